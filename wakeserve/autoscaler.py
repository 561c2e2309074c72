"""The autoscaler loop of one function: the larger of the KPA decision (HTTP) and the KEDA decision (lag).

Each decision runs on its own clock, as on a cluster: the KPA every ``tick_interval_s`` on the concurrency the
activator reports, KEDA every ``pollingInterval`` on the consumer group's lag. Two shortcuts keep a function
at zero responsive: a request held by the activator pokes the KPA at once, and while a function is at zero
its topic is watched every ``fast_poll_s`` so the first event triggers the KEDA decision immediately instead
of at the next polling interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from scalers.keda import KafkaLag, KedaScaler, LagReport, PartitionOffsets, ScaleDecision, ScaledObjectSpec
from scalers.kpa import Kpa, KpaDecision
from wakeserve.manifests import FunctionManifest
from wakeserve.pool import ReplicaPool
from wakeserve.scale_decision import combine

log = logging.getLogger(__name__)


class OffsetSource(Protocol):
    def read(self, topic: str, group: str) -> list[PartitionOffsets]: ...


@dataclass
class Observation:
    """What the last decisions saw, for ``wakeserve status``."""

    lag: int = 0
    lag_active: bool = False
    kpa: KpaDecision | None = None
    keda: ScaleDecision | None = None
    lag_error: str | None = None


class FunctionAutoscaler:
    """Scales one :class:`ReplicaPool` from concurrency samples and consumer lag."""

    def __init__(
        self,
        manifest: FunctionManifest,
        pool: ReplicaPool,
        concurrency: Callable[[], int],
        offsets: OffsetSource | None,
        *,
        sample_interval_s: float = 0.1,
        fast_poll_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        rollout_running: Callable[[], bool] = lambda: False,
    ) -> None:
        self.manifest = manifest
        self.pool = pool
        self.concurrency = concurrency
        self.offsets = offsets if manifest.trigger is not None else None
        self.sample_interval_s = sample_interval_s
        self.fast_poll_s = fast_poll_s
        self.clock = clock
        self.rollout_running = rollout_running
        self.kpa = Kpa(manifest.kpa)
        self.keda = (
            KedaScaler(manifest.trigger, manifest.scaled_object or ScaledObjectSpec()) if manifest.trigger else None
        )
        self._lag = KafkaLag(manifest.trigger) if manifest.trigger else None
        # A separate calculator for the zero-watch so it does not disturb excludePersistentLag's memory.
        self._watch_lag = KafkaLag(manifest.trigger) if manifest.trigger else None
        self.observed = Observation()
        self._wake = asyncio.Event()
        self._keda_due = True

    @property
    def polling_interval_s(self) -> float:
        return self.manifest.scaled_object.polling_interval_s if self.manifest.scaled_object else 30.0

    def poke(self, *, events: bool = False) -> None:
        """Something arrived for this function: decide now rather than at the next tick."""
        if events:
            self._keda_due = True
        else:
            self.kpa.poke(self.clock())
        self._wake.set()

    async def _read_offsets(self) -> list[PartitionOffsets] | None:
        trigger = self.manifest.trigger
        if self.offsets is None or trigger is None:
            return None
        try:
            offsets = await asyncio.to_thread(self.offsets.read, trigger.topic, trigger.consumer_group)
        except Exception as exc:  # noqa: BLE001 - the broker may be briefly away; keep the last decision
            self.observed.lag_error = f"{type(exc).__name__}: {exc}"
            log.warning("%s: reading lag failed: %s", self.manifest.name, self.observed.lag_error)
            return None
        self.observed.lag_error = None
        return offsets

    def _measure(self, calculator: KafkaLag, offsets: list[PartitionOffsets]) -> LagReport:
        report = calculator.measure(offsets)
        self.observed.lag = sum(report.partition_lags.values())
        self.observed.lag_active = report.active
        return report

    async def decide(self) -> None:
        now = self.clock()
        current = len(self.pool.live())
        ready = len(self.pool.ready())
        if self.keda is not None and self._lag is not None and self._watch_lag is not None:
            due = self._keda_due
            if due or current == 0:
                self._keda_due = False
                offsets = await self._read_offsets()
                # At zero between polls, the watch calculator decides whether to act now (what KEDA's push
                # scalers give); the decision itself always goes through the polling calculator.
                if offsets is not None and (due or self._measure(self._watch_lag, offsets).active):
                    self.observed.keda = self.keda.decide(now, self._measure(self._lag, offsets), current)
        self.observed.kpa = self.kpa.decide(now, ready, current)
        target = combine(
            self.observed.kpa,
            self.observed.keda,
            current=current,
            requested=self.pool.desired,
            min_replicas=self.manifest.min_replicas,
            max_replicas=self.manifest.max_replicas,
            rollout_running=self.rollout_running(),
        )
        if target.changed:
            await self.pool.scale_to(target.replicas, target.reason)

    async def run(self, stop: asyncio.Event) -> None:
        sampler = asyncio.create_task(self._sample(stop))
        next_tick = next_poll = self.clock()
        try:
            while not stop.is_set():
                now = self.clock()
                if now >= next_poll:
                    self._keda_due = True
                    next_poll = now + self.polling_interval_s
                self._wake.clear()
                try:
                    await self.decide()
                except Exception:
                    log.exception("%s: scaling decision failed", self.manifest.name)
                next_tick = self.clock() + self.manifest.kpa.tick_interval_s
                while not stop.is_set() and self.clock() < min(next_tick, next_poll):
                    wait = min(next_tick, next_poll) - self.clock()
                    if not self.pool.live():
                        wait = min(wait, self.fast_poll_s)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), max(0.0, wait))
                    if self._wake.is_set() or not self.pool.live():
                        break
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler

    async def _sample(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.kpa.record(self.clock(), float(self.concurrency()))
            await asyncio.sleep(self.sample_interval_s)
