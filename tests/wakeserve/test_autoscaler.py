"""The autoscaler's decision (a table over :func:`combine`) and its loop on a recorded pool and offset source."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from scalers.keda import KafkaTrigger, PartitionOffsets, ScaleDecision, ScaledObjectSpec
from scalers.kpa import KpaDecision, KpaSpec
from wakeserve.autoscaler import FunctionAutoscaler
from wakeserve.manifests import FunctionManifest
from wakeserve.pool import ReplicaPool
from wakeserve.scale_decision import ReplicaTarget, combine


def kpa(desired: int, reason: str = "stable") -> KpaDecision:
    return KpaDecision(desired, False, 0.0, 0.0, reason)


@pytest.mark.parametrize(
    ("kpa_decision", "keda", "current", "requested", "bounds", "expected", "rollout"),
    [
        pytest.param(kpa(0, "scaled-to-zero"), None, 0, 0, (0, 4), ReplicaTarget(0, "kpa: scaled-to-zero", False), False, id="idle-at-zero-no-keda"),
        pytest.param(kpa(2), None, 1, 1, (0, 4), ReplicaTarget(2, "kpa: stable", True), False, id="kpa-alone-scales-up"),
        pytest.param(kpa(1), ScaleDecision(3, "hpa: lag 30 / 10"), 1, 1, (0, 4), ReplicaTarget(3, "keda: hpa: lag 30 / 10", True), False, id="keda-larger"),
        pytest.param(kpa(3, "panic"), ScaleDecision(2, "hpa: lag 20 / 10"), 2, 2, (0, 4), ReplicaTarget(3, "kpa: panic", True), False, id="kpa-larger"),
        pytest.param(kpa(2), ScaleDecision(2, "hpa: lag 20 / 10"), 2, 2, (0, 4), ReplicaTarget(2, "kpa: stable", False), False, id="tie-is-kpa-and-unchanged"),
        pytest.param(kpa(0, "scaled-to-zero"), ScaleDecision(0, "inactive at zero"), 0, 0, (1, 4), ReplicaTarget(1, "kpa: scaled-to-zero", True), False, id="min-raises-zero"),
        pytest.param(kpa(9, "panic"), ScaleDecision(6, "hpa: lag 60 / 10"), 4, 4, (0, 4), ReplicaTarget(4, "kpa: panic", False), False, id="max-caps-kpa"),
        pytest.param(kpa(1), ScaleDecision(7, "hpa: lag 70 / 10"), 2, 2, (0, 5), ReplicaTarget(5, "keda: hpa: lag 70 / 10", True), False, id="max-caps-keda"),
        pytest.param(kpa(0, "scaled-to-zero"), ScaleDecision(1, "activated from zero"), 0, 0, (0, 4), ReplicaTarget(1, "keda: activated from zero", True), False, id="lag-wakes-from-zero"),
        pytest.param(kpa(2), None, 1, 2, (0, 4), ReplicaTarget(2, "kpa: stable", True), False, id="lost-replica-is-asked-again"),
        pytest.param(kpa(2), None, 2, 3, (0, 4), ReplicaTarget(2, "kpa: stable", True), False, id="pool-asked-for-more-is-corrected"),
        pytest.param(kpa(1, "no-data"), ScaleDecision(0, "cooldown elapsed"), 1, 1, (0, 4), ReplicaTarget(1, "kpa: no-data", False), False, id="keda-zero-does-not-override-kpa"),
        pytest.param(kpa(0, "scaled-to-zero"), None, 0, 0, (0, 4), ReplicaTarget(1, "rollout: a running rollout keeps one replica", True), True, id="rollout-wakes-and-keeps-one"),
        pytest.param(kpa(0, "scaled-to-zero"), None, 1, 1, (0, 4), ReplicaTarget(1, "rollout: a running rollout keeps one replica", False), True, id="rollout-holds-one-when-idle"),
        pytest.param(kpa(3, "panic"), None, 2, 2, (0, 4), ReplicaTarget(3, "kpa: panic", True), True, id="rollout-does-not-cap-traffic"),
        pytest.param(kpa(0, "scaled-to-zero"), ScaleDecision(2, "hpa: lag 20 / 10"), 1, 1, (0, 4), ReplicaTarget(2, "keda: hpa: lag 20 / 10", True), True, id="rollout-with-lag-is-keda"),
        pytest.param(kpa(0, "scaled-to-zero"), None, 2, 2, (2, 4), ReplicaTarget(2, "kpa: scaled-to-zero", False), True, id="rollout-under-min-is-min"),
    ],
)  # fmt: skip
def test_combine(
    kpa_decision: KpaDecision,
    keda: ScaleDecision | None,
    current: int,
    requested: int,
    bounds: tuple[int, int],
    expected: ReplicaTarget,
    rollout: bool,
) -> None:
    low, high = bounds
    target = combine(
        kpa_decision,
        keda,
        current=current,
        requested=requested,
        min_replicas=low,
        max_replicas=high,
        rollout_running=rollout,
    )
    assert target == expected


class RecordedPool:
    """What the autoscaler reads of and asks of a :class:`ReplicaPool`, with the asks recorded."""

    def __init__(self, live: int = 0) -> None:
        self.replicas = [object()] * live
        self.desired = live
        self.asks: list[tuple[int, str]] = []

    def live(self) -> list[object]:
        return self.replicas

    def ready(self) -> list[object]:
        return self.replicas

    async def scale_to(self, desired: int, reason: str) -> None:
        self.asks.append((desired, reason))
        self.desired = desired
        self.replicas = [object()] * desired  # started replicas count as live at once, as in the pool


class Offsets:
    """An offset source whose answer (or failure) the test sets."""

    def __init__(self) -> None:
        self.latest, self.committed = 0, 0
        self.failure: Exception | None = None
        self.reads = 0

    def read(self, topic: str, group: str) -> list[PartitionOffsets]:
        self.reads += 1
        assert (topic, group) == ("t", "g")
        if self.failure is not None:
            raise self.failure
        return [PartitionOffsets(0, self.latest, self.committed)]


def autoscaler(pool: RecordedPool, offsets: Offsets, clock: list[float]) -> FunctionAutoscaler:
    manifest = FunctionManifest(
        "f",
        KpaSpec(initial_scale=0),
        KafkaTrigger("t", "g"),
        ScaledObjectSpec(polling_interval_s=30, max_replicas=4),
    )
    return FunctionAutoscaler(
        manifest, cast(ReplicaPool, pool), concurrency=lambda: 0, offsets=offsets, clock=lambda: clock[0]
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_lag_on_a_function_at_zero_wakes_it_and_the_reason_is_keda() -> None:
    pool, offsets, clock = RecordedPool(), Offsets(), [100.0]

    async def scenario() -> None:
        scaler = autoscaler(pool, offsets, clock)
        await scaler.decide()  # first poll: nothing waiting
        assert pool.asks == []
        offsets.latest = 3  # three events, nobody consumed them
        clock[0] += 0.25
        await scaler.decide()  # not due, but at zero the topic is watched on every decision
        assert scaler.observed.lag == 3 and scaler.observed.lag_active

    run(scenario())
    assert pool.asks == [(1, "keda: activated from zero")]


def test_a_failed_offset_read_is_reported_and_keeps_the_last_decision() -> None:
    pool, offsets, clock = RecordedPool(), Offsets(), [100.0]

    async def scenario() -> FunctionAutoscaler:
        scaler = autoscaler(pool, offsets, clock)
        offsets.latest = 5
        await scaler.decide()
        offsets.failure = ConnectionError("broker away")
        clock[0] += 1
        scaler.poke(events=True)  # the next KEDA poll is due
        await scaler.decide()
        return scaler

    scaler = run(scenario())
    assert scaler.observed.lag_error == "ConnectionError: broker away"
    assert scaler.observed.keda == ScaleDecision(1, "activated from zero")
    assert offsets.reads == 2
    assert pool.asks == [(1, "keda: activated from zero")]  # asked once; the failure changed nothing
