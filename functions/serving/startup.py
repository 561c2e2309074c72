"""How long this replica took to start, phase by phase, in seconds since its process was spawned.

The origin is the parent's ``WAKESERVE_SPAWN_TIME`` (its ``time.time()`` just before starting us) when set,
otherwise the kernel's start time of this process (``/proc/self/stat``, 10 ms ticks). A replica's phases:
``entry`` (interpreter up, command line parsed), ``imports`` (serving code imported), ``listening`` (HTTP
socket open, liveness answered), ``artifacts`` (resolved or fetched), ``load`` (weights in memory, including
the model's own imports), ``warmup`` (one inference run) and ``ready`` (models ready and socket open).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)
SPAWN_TIME_ENV = "WAKESERVE_SPAWN_TIME"


def hold_gc() -> None:
    """Pause the cyclic garbage collector for startup.

    Imports and weights allocate ~800k long-lived objects; every collection during startup would traverse
    them again (about 1 s of the 4.6 s a bare torch + transformers process takes to load MiniLM).
    """
    gc.disable()


# Collector thresholds while serving: a young collection every 20,000 net container allocations rather than
# CPython's 700. A replica's in-flight work (up to 256 events, each a task, a coroutine chain, a record and its
# tensors) outlives many 700-allocation periods, so with the default every one of those objects was copied into
# the old generations and traversed again: an echo replica working off a backlog spent ~1 s of every ~8 s in
# the collector (six full collections of ~85 ms each, collecting nothing). With these thresholds it spent 0.1 s.
SERVING_GC_THRESHOLDS = (20_000, 20, 20)


def resume_gc() -> None:
    """After startup: move what it allocated to the permanent generation, then collect at serving thresholds.

    Later collections skip those objects (a full pass over them takes ~0.5 s, a pause a request would feel).
    Cyclic garbage left by startup (~10k objects, a few MB, no tensors) is kept rather than collected on the
    first request's time.
    """
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)
    gc.enable()


def _proc_age() -> float | None:
    """Seconds since this process was forked, from the kernel; None where /proc is not available."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        # Fields after the parenthesised command name start at field 3; starttime is field 22.
        ticks = int(stat.rsplit(b")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def spawn_time(env: Mapping[str, str] = os.environ) -> tuple[float, str]:
    """The wall-clock time this process was spawned, and where that came from (env, proc or now)."""
    given = env.get(SPAWN_TIME_ENV)
    if given:
        try:
            return float(given), "env"
        except ValueError:
            log.warning("ignoring %s=%r: not a number", SPAWN_TIME_ENV, given)
    age = _proc_age()
    if age is not None:
        return time.time() - age, "proc"
    return time.time(), "now"


class StartupTimeline:
    """Named moments of this process's startup; the first mark of a name wins."""

    def __init__(self, spawned_at: float | None = None, origin: str = "given") -> None:
        if spawned_at is None:
            spawned_at, origin = spawn_time()
        self.spawned_at = spawned_at
        self.origin = origin
        self.phases: dict[str, float] = {}
        self._ready = asyncio.Event()

    def mark(self, phase: str, at: float | None = None) -> float:
        """Record ``phase`` as reached now (or at wall-clock time ``at``); returns seconds since spawn.

        Call from the event loop's thread: marking ``ready`` wakes :meth:`wait_ready`.
        """
        seconds = self.phases.setdefault(phase, round((time.time() if at is None else at) - self.spawned_at, 4))
        if phase == "ready":
            self._ready.set()
        return seconds

    async def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``ready``; True if it was reached."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._ready.is_set()

    def report(self) -> dict[str, Any]:
        return {"ready": self._ready.is_set(), "phases": dict(self.phases), "pid": os.getpid(), "origin": self.origin}

    def log_ready(self) -> None:
        log.info("startup phases: %s", json.dumps(self.report(), separators=(",", ":")))
