"""Keep the embedded broker and S3 server running: a child that exits is started again on the same port.

The policy is the replicas' (:mod:`wakeserve.pool`): a single crash is replaced at once; crashes that come in a
loop (more than one within a minute, a failed start counting as one) back off 1, 2, 4 ... 30 s. Nothing is lost
by a restart because both keep their state under the state directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.processes import ChildProcess

log = logging.getLogger(__name__)

CRASH_WINDOW_S = 60.0
MAX_BACKOFF_S = 30.0


def backoff(recent_crashes: int) -> float:
    """Seconds to wait before the next start, given the crashes of the last minute (this one included)."""
    if recent_crashes <= 1:
        return 0.0
    return min(MAX_BACKOFF_S, 2.0 ** (recent_crashes - 2))


@dataclass
class Supervised:
    name: str
    start: Callable[[], ChildProcess]
    child: ChildProcess
    restarts: int = 0
    recent_crashes: list[float] = field(default_factory=list)
    not_before: float = 0.0

    def crashed(self, now: float) -> None:
        self.recent_crashes = [t for t in self.recent_crashes if now - t < CRASH_WINDOW_S] + [now]
        self.not_before = now + backoff(len(self.recent_crashes))


class Supervisor:
    """The embedded parts ``up`` started, watched until ``stop``, then stopped in reverse order."""

    def __init__(self, interval: float = 0.2) -> None:
        self.parts: list[Supervised] = []
        self.interval = interval
        self._down: set[str] = set()

    def add(self, name: str, start: Callable[[], ChildProcess], child: ChildProcess) -> None:
        self.parts.append(Supervised(name, start, child))

    def status(self) -> dict[str, dict[str, Any]]:
        return {p.name: {"pid": p.child.pid, "alive": p.child.alive(), "restarts": p.restarts} for p in self.parts}

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for part in self.parts:
                if stop.is_set():
                    break
                await self._check(part)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def _check(self, part: Supervised) -> None:
        if part.child.alive():
            return
        now = time.monotonic()
        if part.name not in self._down:
            self._down.add(part.name)
            code = await asyncio.to_thread(part.child.stop, 0)
            part.crashed(now)
            log.warning("the embedded %s exited unexpectedly (code %s); restarting it", part.name, code)
        if now < part.not_before:
            return
        try:
            part.child = await asyncio.to_thread(part.start)
        except Exception as exc:  # noqa: BLE001 - a failed start is one more crash, retried after the backoff
            part.crashed(time.monotonic())
            log.warning("the embedded %s did not start again: %s", part.name, str(exc).splitlines()[0])
            return
        self._down.discard(part.name)
        part.restarts += 1
        log.warning("the embedded %s is back (pid %d, restart %d)", part.name, part.child.pid, part.restarts)

    async def stop_all(self) -> None:
        for part in reversed(self.parts):
            await asyncio.to_thread(part.child.stop)
