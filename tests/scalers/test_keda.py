from __future__ import annotations

import pytest

from scalers.hpa import HpaBehavior
from scalers.keda import (
    KafkaLag,
    KafkaTrigger,
    KedaScaler,
    LagReport,
    PartitionOffsets,
    ScaledObjectSpec,
)


def parts(*offsets: tuple[int, int | None]) -> list[PartitionOffsets]:
    """Partitions 0..n-1 from (latest, committed) pairs."""
    return [PartitionOffsets(i, latest, committed) for i, (latest, committed) in enumerate(offsets)]


def lag_of(*lags: int) -> list[PartitionOffsets]:
    return parts(*((100 + lag, 100) for lag in lags))


def report(total: int, active: bool) -> LagReport:
    return LagReport(total, total, {0: total}, 1, int(total > 0), active)


# --- trigger metadata -------------------------------------------------------------------------------------------


def test_trigger_defaults_are_kedas():
    t = KafkaTrigger("t", "g")
    assert (t.lag_threshold, t.activation_lag_threshold, t.offset_reset_policy) == (10, 0, "latest")
    assert not (
        t.allow_idle_consumers
        or t.exclude_persistent_lag
        or t.scale_to_zero_on_invalid_offset
        or t.limit_to_partitions_with_lag
    )


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"topic": "t", "consumerGroup": "g"}, KafkaTrigger("t", "g")),
        (
            {
                "bootstrapServers": "kafka:9092",
                "topic": "t",
                "consumerGroup": "g",
                "lagThreshold": "64",
                "activationLagThreshold": "3",
                "offsetResetPolicy": "earliest",
                "allowIdleConsumers": "true",
                "excludePersistentLag": "True",
                "scaleToZeroOnInvalidOffset": "1",
                "limitToPartitionsWithLag": "false",
            },
            KafkaTrigger("t", "g", 64, 3, "earliest", True, True, True, False),
        ),
        (
            {
                "topic": " t ",
                "consumerGroup": "g",
                "lagThreshold": " 5 ",
                "offsetResetPolicy": "",
                "allowIdleConsumers": "",
            },
            KafkaTrigger("t", "g", lag_threshold=5),
        ),
        (
            {"topic": "t", "consumerGroup": "g", "limitToPartitionsWithLag": "T"},
            KafkaTrigger("t", "g", limit_to_partitions_with_lag=True),
        ),
    ],
    ids=["minimal", "every-field", "trimmed-and-empty-is-unset", "go-bool-T"],
)
def test_from_metadata(metadata, expected):
    assert KafkaTrigger.from_metadata(metadata) == expected


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"topic": "t"}, "no consumer group given"),
        ({"consumerGroup": "g"}, "no topic given"),
        ({"topic": "t", "consumerGroup": "g", "lagThreshold": "0"}, "lagThreshold must be a positive number"),
        ({"topic": "t", "consumerGroup": "g", "lagThreshold": "-5"}, "lagThreshold must be a positive number"),
        ({"topic": "t", "consumerGroup": "g", "lagThreshold": "ten"}, "error parsing lagThreshold"),
        ({"topic": "t", "consumerGroup": "g", "lagThreshold": "5.0"}, "error parsing lagThreshold"),
        ({"topic": "t", "consumerGroup": "g", "lagThreshold": "+5"}, "error parsing lagThreshold"),
        ({"topic": "t", "consumerGroup": "g", "activationLagThreshold": "-1"}, "activationLagThreshold must be >= 0"),
        (
            {"topic": "t", "consumerGroup": "g", "offsetResetPolicy": "newest"},
            "offsetResetPolicy must be latest or earliest",
        ),
        ({"topic": "t", "consumerGroup": "g", "allowIdleConsumers": "yes"}, "error parsing allowIdleConsumers"),
        (
            {"topic": "t", "consumerGroup": "g", "allowIdleConsumers": "true", "limitToPartitionsWithLag": "true"},
            "cannot be set simultaneously",
        ),
    ],
    ids=[
        "no-group",
        "no-topic",
        "zero-threshold",
        "negative-threshold",
        "word-threshold",
        "float-threshold",
        "plus-sign",
        "negative-activation",
        "bad-policy",
        "bad-bool",
        "idle-and-limit",
    ],
)
def test_from_metadata_rejects(metadata, message):
    with pytest.raises(ValueError, match=message):
        KafkaTrigger.from_metadata(metadata)


# --- lag --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "offsets", "expected"),
    [
        (KafkaTrigger("t", "g"), PartitionOffsets(0, 42, None), (1, 1)),
        (KafkaTrigger("t", "g", scale_to_zero_on_invalid_offset=True), PartitionOffsets(0, 42, None), (0, 0)),
        (KafkaTrigger("t", "g", offset_reset_policy="earliest"), PartitionOffsets(0, 42, None), (42, 42)),
        (
            KafkaTrigger("t", "g", offset_reset_policy="earliest", scale_to_zero_on_invalid_offset=True),
            PartitionOffsets(0, 42, None),
            (0, 0),
        ),
        (KafkaTrigger("t", "g"), PartitionOffsets(0, 42, 30), (12, 12)),
        (KafkaTrigger("t", "g"), PartitionOffsets(0, 42, 42), (0, 0)),
        (KafkaTrigger("t", "g"), PartitionOffsets(0, 42, 45), (-3, -3)),  # passed through, as upstream
    ],
    ids=[
        "no-commit-latest",
        "no-commit-latest-scale-to-zero",
        "no-commit-earliest",
        "no-commit-earliest-scale-to-zero",
        "lag",
        "caught-up",
        "committed-past-end",
    ],
)
def test_partition_lag(trigger, offsets, expected):
    assert KafkaLag(trigger).partition_lag(offsets) == expected


@pytest.mark.parametrize(
    ("trigger", "offsets", "total", "with_persistent", "with_lag", "active"),
    [
        (KafkaTrigger("t", "g"), lag_of(20, 20, 5, 0), 45, 45, 3, True),  # 45 / 10 = 4, not > 4: NOT capped
        (KafkaTrigger("t", "g"), lag_of(49, 0, 0, 0), 49, 49, 1, True),  # still 4
        (KafkaTrigger("t", "g"), lag_of(20, 20, 10, 0), 40, 50, 3, True),  # 5 > 4: capped to 4 x 10
        (KafkaTrigger("t", "g", allow_idle_consumers=True), lag_of(100, 0), 100, 100, 1, True),
        (KafkaTrigger("t", "g", limit_to_partitions_with_lag=True), lag_of(30, 0, 0, 0), 10, 30, 1, True),
        (KafkaTrigger("t", "g", limit_to_partitions_with_lag=True), lag_of(15, 0, 0, 0), 15, 15, 1, True),
        (KafkaTrigger("t", "g", limit_to_partitions_with_lag=True), lag_of(0, 0), 0, 0, 0, False),
        (KafkaTrigger("t", "g", activation_lag_threshold=5), lag_of(3, 2), 5, 5, 2, False),  # strictly greater
        (KafkaTrigger("t", "g", activation_lag_threshold=5), lag_of(3, 3), 6, 6, 2, True),
        (KafkaTrigger("t", "g", activation_lag_threshold=50), lag_of(100), 10, 100, 1, True),  # uncapped lag
        (KafkaTrigger("t", "g"), parts((100, None), (100, None), (100, None)), 3, 3, 3, True),
        (KafkaTrigger("t", "g", scale_to_zero_on_invalid_offset=True), parts((100, None)), 0, 0, 0, False),
        (KafkaTrigger("t", "g", offset_reset_policy="earliest"), parts((7, None), (0, None)), 7, 7, 1, True),
        (KafkaTrigger("t", "g", offset_reset_policy="earliest"), parts((500, None), (500, None)), 20, 1000, 2, True),
        (KafkaTrigger("t", "g"), [], 0, 0, 0, False),
    ],
    ids=[
        "45-of-4x10-not-capped",
        "49-not-capped",
        "50-capped-to-40",
        "idle-consumers-uncapped",
        "limit-to-lagging-partitions",
        "limit-not-reached",
        "limit-with-no-lag",
        "activation-equal-is-inactive",
        "activation-above",
        "activation-on-uncapped-lag",
        "new-group-latest",
        "new-group-latest-scale-to-zero",
        "new-group-earliest",
        "new-group-earliest-capped",
        "no-partitions",
    ],
)
def test_measure(trigger, offsets, total, with_persistent, with_lag, active):
    r = KafkaLag(trigger).measure(offsets)
    assert (r.total_lag, r.total_lag_with_persistent, r.partitions_with_lag, r.active) == (
        total,
        with_persistent,
        with_lag,
        active,
    )
    assert r.partitions == len(offsets)
    assert sum(r.partition_lags.values()) == with_persistent  # per-partition lags are never capped


def test_exclude_persistent_lag_remembers_committed_offsets_across_polls():
    lag = KafkaLag(KafkaTrigger("t", "g", exclude_persistent_lag=True))
    polls = [
        (parts((10, 5), (4, 4)), {0: 5, 1: 0}, 5, 5),  # first sight: counted
        (parts((12, 5), (6, 4)), {0: 0, 1: 0}, 0, 9),  # no progress: excluded from the metric, not from activation
        (parts((12, 8), (6, 4)), {0: 4, 1: 0}, 4, 6),  # partition 0 moved: counted again
        (parts((12, 8), (6, 6)), {0: 0, 1: 0}, 0, 4),
        (parts((12, None), (6, 6)), {0: 1, 1: 0}, 1, 1),  # no commit: the invalid-offset rule, state untouched
        (parts((12, 8), (6, 6)), {0: 0, 1: 0}, 0, 4),
    ]
    for offsets, partition_lags, total, with_persistent in polls:
        r = lag.measure(offsets)
        assert (r.partition_lags, r.total_lag, r.total_lag_with_persistent) == (partition_lags, total, with_persistent)
        assert r.active == (with_persistent > 0)


def test_duplicate_partitions_are_rejected():
    with pytest.raises(ValueError, match="duplicate partitions"):
        KafkaLag(KafkaTrigger("t", "g")).measure([PartitionOffsets(0, 1, 0), PartitionOffsets(0, 2, 0)])


# --- ScaledObject spec ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, ScaledObjectSpec(30, 300, 0, 100, None)),
        (
            {
                "scaleTargetRef": {"name": "embedder-predictor"},
                "pollingInterval": 15,
                "cooldownPeriod": 120,
                "minReplicaCount": 0,
                "maxReplicaCount": 4,
                "triggers": [{"type": "kafka", "metadata": {}}],
            },
            ScaledObjectSpec(15, 120, 0, 4, None),
        ),
        ({"minReplicaCount": 1, "idleReplicaCount": 0}, ScaledObjectSpec(30, 300, 1, 100, 0)),
        ({"cooldownPeriod": 0}, ScaledObjectSpec(30, 0, 0, 100, None)),
    ],
    ids=["defaults", "wakeserve-manifest", "idle", "no-cooldown"],
)
def test_from_manifest(spec, expected):
    assert ScaledObjectSpec.from_manifest(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"pollingInterval": 0}, "pollingInterval must be > 0"),
        ({"pollingInterval": "30"}, "pollingInterval must be an integer"),
        ({"maxReplicaCount": True}, "maxReplicaCount must be an integer"),
        ({"cooldownPeriod": -1}, "cooldownPeriod must be >= 0"),
        ({"minReplicaCount": -1}, "minReplicaCount must be >= 0"),
        ({"minReplicaCount": 5, "maxReplicaCount": 3}, "MinReplicaCount=5 must be less than MaxReplicaCount=3"),
        ({"maxReplicaCount": 0}, "MaxReplicaCount >= 1"),
        (
            {"minReplicaCount": 1, "idleReplicaCount": 1},
            "IdleReplicaCount=1 must be >= 0 and less than MinReplicaCount=1",
        ),
        ({"idleReplicaCount": 0}, "IdleReplicaCount=0 must be >= 0 and less than MinReplicaCount=0"),
        ({"minReplicaCount": 2, "idleReplicaCount": -1}, "IdleReplicaCount=-1"),
    ],
    ids=[
        "zero-polling",
        "string-polling",
        "bool-max",
        "negative-cooldown",
        "negative-min",
        "min-above-max",
        "max-zero",
        "idle-equals-min",
        "idle-without-min",
        "negative-idle",
    ],
)
def test_from_manifest_rejects(spec, message):
    with pytest.raises(ValueError, match=message):
        ScaledObjectSpec.from_manifest(spec)


# --- lifecycle --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "last_active", "lag", "active", "current", "expected", "last_active_after"),
    [
        (ScaledObjectSpec(), None, 1, True, 0, (1, "activated from zero"), 100),
        (ScaledObjectSpec(min_replicas=3), None, 1, True, 0, (3, "activated from zero"), 100),
        (ScaledObjectSpec(min_replicas=2, idle_replicas=0), None, 1, True, 1, (2, "activated from idle"), 100),
        # Active with replicas: the HPA (no behavior: at most max(2 x 4, 4)) decides; 100 / 10 wants 10.
        (ScaledObjectSpec(), 50, 100, True, 4, (8, "hpa: lag 100 / 10"), 100),
        (ScaledObjectSpec(max_replicas=10), None, 500, True, 12, (10, "hpa: lag 500 / 10"), 100),
        (ScaledObjectSpec(), None, 0, False, 2, (0, "inactive, never active"), None),
        (ScaledObjectSpec(min_replicas=1, idle_replicas=0), None, 0, False, 3, (0, "inactive, never active"), None),
        # With idle replicas, an inactive target below min goes to idle, not up to min.
        (ScaledObjectSpec(0.5, 0, min_replicas=3, idle_replicas=0), 0, 0, False, 1, (0, "cooldown elapsed"), 0),
        (ScaledObjectSpec(), -250, 0, False, 2, (0, "cooldown elapsed"), -250),
        # now == last active + cooldown is still cooling down (upstream compares strictly).
        (ScaledObjectSpec(cooldown_period_s=100), 0, 0, False, 2, (2, "cooling down; hpa: lag 0 / 10"), 0),
        (ScaledObjectSpec(), None, 0, False, 0, (0, "inactive at zero"), None),
        (ScaledObjectSpec(min_replicas=3), None, 0, False, 1, (3, "below minReplicaCount"), None),
        (ScaledObjectSpec(min_replicas=2), 0, 0, False, 5, (5, "hpa: lag 0 / 10"), 0),  # HPA's first sync holds
        (ScaledObjectSpec(), -250, 3, False, 2, (0, "cooldown elapsed"), -250),  # lag below activation is idle
    ],
    ids=[
        "wake",
        "wake-to-min",
        "wake-from-idle",
        "hpa-when-active",
        "hpa-caps-at-max",
        "never-active",
        "never-active-to-idle",
        "idle-below-min",
        "cooldown-elapsed",
        "cooling-down",
        "stays-at-zero",
        "below-min",
        "min-above-zero",
        "inactive-with-lag",
    ],
)
def test_decide_one_poll(spec, last_active, lag, active, current, expected, last_active_after):
    scaler = KedaScaler(KafkaTrigger("t", "g"), spec)
    scaler.last_active = last_active
    decision = scaler.decide(100, report(lag, active), current)
    assert (decision.replicas, decision.reason) == expected
    assert scaler.last_active == last_active_after


def test_cooldown_is_strict_and_the_hpa_holds_meanwhile():
    scaler = KedaScaler(KafkaTrigger("t", "g"), ScaledObjectSpec(cooldown_period_s=300, max_replicas=10))
    polls = [
        (0, report(30, True), 0, 1, "activated from zero"),
        (15, report(30, True), 1, 3, "hpa: lag 30 / 10"),
        (30, report(0, False), 3, 3, "cooling down; hpa: lag 0 / 10"),  # the HPA's 300 s window keeps 3
        (315, report(0, False), 3, 3, "cooling down; hpa: lag 0 / 10"),  # last active 15 + 300: not yet past
        (315.5, report(0, False), 3, 0, "cooldown elapsed"),
    ]
    for now, lag, current, replicas, reason in polls:
        decision = scaler.decide(now, lag, current)
        assert (now, decision.replicas, decision.reason) == (now, replicas, reason)
    assert scaler.last_active == 15


def test_idle_replicas_lifecycle():
    scaler = KedaScaler(KafkaTrigger("t", "g"), ScaledObjectSpec(cooldown_period_s=60, min_replicas=2, idle_replicas=0))
    polls = [
        (0, report(5, True), 0, 2, "activated from zero"),
        (10, report(0, False), 2, 2, "cooling down; hpa: lag 0 / 10"),
        (61, report(0, False), 2, 0, "cooldown elapsed"),
        (70, report(0, False), 0, 0, "inactive at zero"),
        (80, report(1, True), 0, 2, "activated from zero"),
    ]
    assert [(d.replicas, d.reason) for d in (scaler.decide(n, r, c) for n, r, c, _, _ in polls)] == [
        (replicas, reason) for *_, replicas, reason in polls
    ]


def test_min_replicas_one_never_reaches_zero():
    scaler = KedaScaler(KafkaTrigger("t", "g"), ScaledObjectSpec(min_replicas=1, cooldown_period_s=0))
    assert scaler.decide(0, report(0, False), 0).replicas == 1
    assert scaler.decide(15, report(0, False), 1).replicas == 1
    assert scaler.decide(1000, report(0, False), 1).replicas == 1


def test_activation_then_hpa_behavior_ramp():
    scaler = KedaScaler(KafkaTrigger("t", "g"), ScaledObjectSpec(max_replicas=20), HpaBehavior())
    # 0 -> 1 is KEDA's; then the HPA may add max(+4, x2) per 15 s: 1 -> 5 -> 10 -> 20.
    calls = [(0, 0), (15, 1), (30, 5), (45, 10), (60, 20)]
    assert [scaler.decide(now, report(200, True), current).replicas for now, current in calls] == [1, 5, 10, 20, 20]
