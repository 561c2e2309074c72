"""The replicas of one function: start, watch for readiness, drain on scale-down, replace after a crash.

A replica is a real ``wakeserve serve F --consume`` process on a free loopback port, with its admin listener
(startup timeline, control API) on another. It takes traffic only once its ``/v2/health/ready`` answers 200. Scale-down drains: the replica leaves the routing set first, then gets
SIGTERM, finishes what it has in flight, leaves its consumer group and exits; after ``drain_timeout_s`` it is
killed. A replica that exits on its own is counted as a crash and replaced (with a backoff if it keeps dying).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.processes import ChildProcess, free_port

log = logging.getLogger(__name__)


class State(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"


@dataclass(eq=False)
class Replica:
    """One predictor process and what the gateway knows about it."""

    function: str
    index: int
    port: int
    process: ChildProcess
    started: float
    admin_port: int | None = None  # None: no admin listener of its own (pools without one, as in unit tests)
    state: State = State.STARTING
    ready_at: float | None = None
    inflight: int = 0
    served: int = 0
    version: str | None = None
    candidate: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        """The replica's private listener: ``/wakeserve/startup`` and the control API."""
        return f"http://127.0.0.1:{self.admin_port or self.port}"

    def snapshot(self) -> dict[str, object]:
        return {
            "index": self.index,
            "pid": self.process.pid,
            "port": self.port,
            "admin_port": self.admin_port,
            "state": self.state.value,
            "inflight": self.inflight,
            "served": self.served,
            "version": self.version,
            "candidate": self.candidate,
            "startup_s": round(self.ready_at - self.started, 3) if self.ready_at else None,
        }


@dataclass
class ScaleEvent:
    at: float
    before: int
    after: int
    reason: str


ArgvFactory = Callable[[int], Sequence[str]]


@dataclass
class PoolCounters:
    cold_starts: int = 0
    crashes: int = 0
    started: int = 0
    last_scale: ScaleEvent | None = None
    recent_crashes: list[float] = field(default_factory=list)


class ReplicaPool:
    """Keeps ``desired`` replicas of one function alive and tells waiters when one becomes ready."""

    def __init__(
        self,
        function: str,
        argv: ArgvFactory,
        *,
        env: Mapping[str, str],
        log_dir: Path,
        client: httpx.AsyncClient,
        admin_token: str | None = None,
        drain_timeout_s: float = 40.0,
        probe_interval_s: float = 0.02,
    ) -> None:
        self.function = function
        self._argv = argv
        self._env = dict(env)
        self._log_dir = log_dir
        self._client = client
        self._admin_headers = {"authorization": f"Bearer {admin_token}"} if admin_token else {}
        self.drain_timeout_s = drain_timeout_s
        self.probe_interval_s = probe_interval_s
        self.replicas: list[Replica] = []
        self.desired = 0
        self.counters = PoolCounters()
        self.changed = asyncio.Condition()
        self._next_index = 0
        self._not_before = 0.0
        self._drains: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.model_args: list[str] = []

    def set_model(self, model_uri: str | None, version: str) -> None:
        """Replicas started from now on serve ``version`` (from ``model_uri``; None keeps the artifacts)."""
        uri = model_uri
        if uri is None and "--model-uri" in self.model_args:
            uri = self.model_args[self.model_args.index("--model-uri") + 1]
        self.model_args = (["--model-uri", uri] if uri else []) + ["--model-version", version]

    # -- views -------------------------------------------------------------------------------------------------
    def live(self) -> list[Replica]:
        """Replicas that count towards the scale: starting or ready, not draining."""
        return [r for r in self.replicas if r.state is not State.DRAINING]

    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.state is State.READY]

    def pick(self, limit: int = 0) -> Replica | None:
        """The least-loaded ready replica with room under ``limit`` in-flight requests (0 = no limit)."""
        candidates = [r for r in self.ready() if not limit or r.inflight < limit]
        return min(candidates, key=lambda r: (r.inflight, r.served), default=None)

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    # -- scaling -----------------------------------------------------------------------------------------------
    async def scale_to(self, desired: int, reason: str) -> None:
        before = len(self.live())
        self.desired = desired
        if desired != before:
            self.counters.last_scale = ScaleEvent(time.time(), before, desired, reason)
            log.info("%s: scale %d -> %d (%s)", self.function, before, desired, reason)
        await self.reconcile()

    async def reconcile(self) -> None:
        live = self.live()
        missing = self.desired - len(live)
        if missing > 0 and time.monotonic() >= self._not_before:
            if not live:
                self.counters.cold_starts += 1
            for _ in range(missing):
                self._start()
        elif missing < 0:
            # Drain the ones doing the least: starting replicas first, then the idlest ready ones.
            order = sorted(live, key=lambda r: (r.state is State.READY, r.inflight, -r.started))
            for replica in order[:-missing]:
                self._drain(replica)
            await self.notify()

    def _start(self) -> None:
        port, admin_port = free_port(), free_port()
        index = self._next_index
        self._next_index += 1
        argv = [*self._argv(port), *self.model_args]
        self._log_dir.mkdir(parents=True, exist_ok=True)
        env = {**self._env, "WAKESERVE_SPAWN_TIME": repr(time.time()), "WAKESERVE_ADMIN_PORT": str(admin_port)}
        process = ChildProcess(
            f"{self.function}-{index}", argv, env=env, log_path=self._log_dir / f"{self.function}-{index}.log"
        )
        replica = Replica(self.function, index, port, process, time.monotonic(), admin_port=admin_port)
        self.replicas.append(replica)
        self.counters.started += 1
        task = asyncio.create_task(self._await_ready(replica))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _drain(self, replica: Replica) -> None:
        replica.state = State.DRAINING
        task = asyncio.create_task(self._stop(replica))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _stop(self, replica: Replica) -> None:
        # The gateway sends nothing new to a draining replica; wait for what it already sent to come back.
        deadline = time.monotonic() + self.drain_timeout_s
        while replica.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        code = await asyncio.to_thread(replica.process.stop, max(1.0, deadline - time.monotonic()))
        log.info("%s-%d stopped (exit %s)", self.function, replica.index, code)
        with contextlib.suppress(ValueError):
            self.replicas.remove(replica)

    async def replace(self, replica: Replica) -> None:
        """Take ``replica`` out of routing, drain it, and start another in its place."""
        if replica.state is State.DRAINING or replica not in self.replicas:
            return
        self._drain(replica)
        await self.notify()
        await self.reconcile()

    # -- watching ----------------------------------------------------------------------------------------------
    async def _await_ready(self, replica: Replica) -> None:
        """Mark ``replica`` ready as soon as it is. One long-poll (``/wakeserve/startup?wait=``) instead of
        frequent readiness probes, which would take the GIL from the loading thread on every poll."""
        while replica.state is State.STARTING and replica.process.alive():
            try:
                startup = await self._client.get(
                    f"{replica.admin_url}/wakeserve/startup",
                    params={"wait": 30},
                    headers=self._admin_headers,
                    timeout=httpx.Timeout(35, connect=1),
                )
                if startup.status_code != 200:
                    await asyncio.sleep(0.1)
                    continue
                if not startup.json().get("ready"):
                    continue  # the long-poll ran out; ask again
                ready = await self._client.get(f"{replica.url}/v2/health/ready", timeout=2)
            except httpx.ConnectError:
                await asyncio.sleep(self.probe_interval_s)  # not listening yet
                continue
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
                continue
            if ready.status_code == 200 and replica.state is State.STARTING:
                replica.state, replica.ready_at = State.READY, time.monotonic()
                log.info("%s-%d ready after %.2fs", self.function, replica.index, replica.ready_at - replica.started)
                await self.notify()
                return

    async def watch_once(self) -> None:
        """One pass: readiness of starting replicas, crashed processes, replacements."""
        changed = False
        for replica in list(self.replicas):
            if replica.state is State.DRAINING:
                continue
            if not replica.process.alive():
                self._crashed(replica)
                changed = True
        if len(self.live()) < self.desired:
            await self.reconcile()
        if changed:
            await self.notify()

    def report_failure(self, replica: Replica) -> None:
        """The gateway could not talk to ``replica``: if its process is gone, take it out of routing now."""
        if replica in self.replicas and replica.state is not State.DRAINING and not replica.process.alive():
            self._crashed(replica)

    def _crashed(self, replica: Replica) -> None:
        code = replica.process.stop(0)
        log.warning("%s-%d exited unexpectedly (code %s); replacing it", self.function, replica.index, code)
        self.replicas.remove(replica)
        now = time.monotonic()
        self.counters.crashes += 1
        recent = [t for t in self.counters.recent_crashes if now - t < 60] + [now]
        self.counters.recent_crashes = recent
        # Crash loops back off (1, 2, 4 ... 30 s); a single crash is replaced at once.
        if len(recent) > 1:
            self._not_before = now + min(30.0, 2.0 ** (len(recent) - 2))

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.watch_once()
            except Exception:  # a probe or spawn failure must not end supervision
                log.exception("%s: supervision pass failed", self.function)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)

    async def shutdown(self) -> None:
        """Drain every replica and wait for all of them to exit."""
        self.desired = 0
        for replica in self.live():
            self._drain(replica)
        if self._drains:
            await asyncio.gather(*list(self._drains), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
