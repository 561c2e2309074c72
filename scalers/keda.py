"""KEDA's Kafka scaler maths and the ScaledObject activation/cooldown lifecycle around its HPA.

Pure: offsets and the current replica count come in, a lag report and a replica count come out; time is passed
in as ``now`` (seconds, monotonic). Sources, defaults and the upstream quirks kept on purpose are in
docs/scaling.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from scalers.hpa import Hpa, HpaBehavior

OffsetResetPolicy = Literal["latest", "earliest"]

DEFAULT_LAG_THRESHOLD = 10
# KEDA's typed config: values are trimmed, empty means unset, bools go through Go's strconv.ParseBool and
# integers through encoding/json (so no "+5", no "05", no "5.0").
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_JSON_INT = re.compile(r"-?(0|[1-9][0-9]*)")


def _metadata(metadata: Mapping[str, str], key: str) -> str:
    return metadata.get(key, "").strip()


def _metadata_int(metadata: Mapping[str, str], key: str, default: int) -> int:
    raw = _metadata(metadata, key)
    if raw == "":
        return default
    if not _JSON_INT.fullmatch(raw):
        raise ValueError(f"error parsing {key}: {raw!r} is not an integer")
    return int(raw)


def _metadata_bool(metadata: Mapping[str, str], key: str) -> bool:
    raw = _metadata(metadata, key)
    if raw == "" or raw in _GO_FALSE:
        return False
    if raw in _GO_TRUE:
        return True
    raise ValueError(f"error parsing {key}: {raw!r} is not a boolean")


@dataclass(frozen=True)
class KafkaTrigger:
    """The metadata of one KEDA ``kafka`` trigger, with KEDA's defaults and validation."""

    topic: str
    consumer_group: str
    lag_threshold: int = DEFAULT_LAG_THRESHOLD
    activation_lag_threshold: int = 0
    offset_reset_policy: OffsetResetPolicy = "latest"
    allow_idle_consumers: bool = False
    exclude_persistent_lag: bool = False
    scale_to_zero_on_invalid_offset: bool = False
    limit_to_partitions_with_lag: bool = False

    def __post_init__(self) -> None:
        if not self.consumer_group:
            raise ValueError("no consumer group given")
        if not self.topic:
            raise ValueError(
                "no topic given (wakeserve measures one topic; KEDA's all-subscribed-topics mode is not supported)"
            )
        if self.lag_threshold <= 0:
            raise ValueError(f"lagThreshold must be a positive number, not {self.lag_threshold}")
        if self.activation_lag_threshold < 0:
            raise ValueError(f"activationLagThreshold must be >= 0, not {self.activation_lag_threshold}")
        if self.offset_reset_policy not in get_args(OffsetResetPolicy):
            raise ValueError(f"offsetResetPolicy must be latest or earliest, not {self.offset_reset_policy!r}")
        if self.allow_idle_consumers and self.limit_to_partitions_with_lag:
            raise ValueError("allowIdleConsumers and limitToPartitionsWithLag cannot be set simultaneously")

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> KafkaTrigger:
        """Parse ``triggers[].metadata`` (camelCase keys, string values); other keys are ignored."""
        policy = _metadata(metadata, "offsetResetPolicy") or "latest"
        if policy not in get_args(OffsetResetPolicy):
            raise ValueError(f"offsetResetPolicy must be latest or earliest, not {policy!r}")
        return cls(
            topic=_metadata(metadata, "topic"),
            consumer_group=_metadata(metadata, "consumerGroup"),
            lag_threshold=_metadata_int(metadata, "lagThreshold", DEFAULT_LAG_THRESHOLD),
            activation_lag_threshold=_metadata_int(metadata, "activationLagThreshold", 0),
            offset_reset_policy="earliest" if policy == "earliest" else "latest",
            allow_idle_consumers=_metadata_bool(metadata, "allowIdleConsumers"),
            exclude_persistent_lag=_metadata_bool(metadata, "excludePersistentLag"),
            scale_to_zero_on_invalid_offset=_metadata_bool(metadata, "scaleToZeroOnInvalidOffset"),
            limit_to_partitions_with_lag=_metadata_bool(metadata, "limitToPartitionsWithLag"),
        )


@dataclass(frozen=True)
class PartitionOffsets:
    """One partition of the trigger's topic: its end offset and the consumer group's committed offset."""

    partition: int
    latest: int
    committed: int | None


@dataclass(frozen=True)
class LagReport:
    """What one KEDA poll of the kafka scaler yields: the HPA's metric value and the activity flag."""

    total_lag: int
    total_lag_with_persistent: int
    partition_lags: Mapping[int, int]
    partitions: int
    partitions_with_lag: int
    active: bool


class KafkaLag:
    """KEDA's kafka_scaler.go lag computation; stateful across polls only for excludePersistentLag."""

    def __init__(self, trigger: KafkaTrigger) -> None:
        self.trigger = trigger
        self._previous_committed: dict[int, int] = {}

    def partition_lag(self, offsets: PartitionOffsets) -> tuple[int, int]:
        """(lag, lag with persistent lag) of one partition; records the committed offset for excludePersistentLag."""
        t = self.trigger
        if offsets.committed is None:
            if t.scale_to_zero_on_invalid_offset:
                return 0, 0
            # No commit yet. "earliest": the whole partition is backlog; "latest": the consumer would skip it, so
            # report 1, just enough to start a consumer that commits (kedacore/keda#2612).
            lag = 1 if t.offset_reset_policy == "latest" else offsets.latest
            return lag, lag
        lag = offsets.latest - offsets.committed
        if t.exclude_persistent_lag:
            previous = self._previous_committed.get(offsets.partition)
            if previous == offsets.committed:
                return 0, lag  # the consumer has not moved: more replicas would not help
            self._previous_committed[offsets.partition] = offsets.committed
        return lag, lag

    def measure(self, offsets: Sequence[PartitionOffsets]) -> LagReport:
        t = self.trigger
        seen = [o.partition for o in offsets]
        if len(set(seen)) != len(seen):
            raise ValueError(f"duplicate partitions in {sorted(seen)}")
        partition_lags: dict[int, int] = {}
        total_lag = total_with_persistent = 0
        for o in offsets:
            lag, with_persistent = self.partition_lag(o)
            partition_lags[o.partition] = lag
            total_lag += lag
            total_with_persistent += with_persistent
        partitions = len(offsets)
        partitions_with_lag = sum(1 for lag in partition_lags.values() if lag > 0)
        if not t.allow_idle_consumers or t.limit_to_partitions_with_lag:
            upper_bound = partitions_with_lag if t.limit_to_partitions_with_lag else partitions
            # Integer division, as upstream: 45 lag / threshold 10 = 4, not > 4 partitions, so 45 stays 45.
            # (Go truncates where // floors; they differ only for a negative total, which is never capped.)
            if total_lag // t.lag_threshold > upper_bound:
                total_lag = upper_bound * t.lag_threshold
        return LagReport(
            total_lag=total_lag,
            total_lag_with_persistent=total_with_persistent,
            partition_lags=partition_lags,
            partitions=partitions,
            partitions_with_lag=partitions_with_lag,
            active=total_with_persistent > t.activation_lag_threshold,
        )


def _spec_int(spec: Mapping[str, Any], key: str) -> int | None:
    value = spec.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{key} must be an integer, not {value!r}")
    return value


def _spec_int_or(spec: Mapping[str, Any], key: str, default: int) -> int:
    value = _spec_int(spec, key)
    return default if value is None else value


@dataclass(frozen=True)
class ScaledObjectSpec:
    """The lifecycle fields of a KEDA ScaledObject ``spec``, with KEDA's defaults and bounds checks."""

    polling_interval_s: float = 30
    cooldown_period_s: float = 300
    min_replicas: int = 0
    max_replicas: int = 100
    idle_replicas: int | None = None

    def __post_init__(self) -> None:
        if self.polling_interval_s <= 0:
            raise ValueError(f"pollingInterval must be > 0, not {self.polling_interval_s}")
        if self.cooldown_period_s < 0:
            raise ValueError(f"cooldownPeriod must be >= 0, not {self.cooldown_period_s}")
        if self.min_replicas < 0:
            raise ValueError(f"minReplicaCount must be >= 0, not {self.min_replicas}")
        if self.max_replicas < 1 or self.min_replicas > self.max_replicas:
            raise ValueError(
                f"MinReplicaCount={self.min_replicas} must be less than MaxReplicaCount={self.max_replicas}"
                " (and MaxReplicaCount >= 1)"
            )
        if self.idle_replicas is not None and not 0 <= self.idle_replicas < self.min_replicas:
            raise ValueError(
                f"IdleReplicaCount={self.idle_replicas} must be >= 0 and less than MinReplicaCount={self.min_replicas}"
            )

    @classmethod
    def from_manifest(cls, spec: Mapping[str, Any]) -> ScaledObjectSpec:
        """Parse a ScaledObject ``spec`` mapping; keys other than the five lifecycle ones are ignored."""
        return cls(
            polling_interval_s=_spec_int_or(spec, "pollingInterval", 30),
            cooldown_period_s=_spec_int_or(spec, "cooldownPeriod", 300),
            min_replicas=_spec_int_or(spec, "minReplicaCount", 0),
            max_replicas=_spec_int_or(spec, "maxReplicaCount", 100),
            idle_replicas=_spec_int(spec, "idleReplicaCount"),
        )


@dataclass(frozen=True)
class ScaleDecision:
    """The replica count to set and why."""

    replicas: int
    reason: str


class KedaScaler:
    """One ScaledObject with one kafka trigger: KEDA's activation/cooldown lifecycle around an HPA.

    Each ``decide`` is one KEDA poll (call it every ``spec.polling_interval_s``) followed by one HPA sync. KEDA
    owns 0 <-> 1 (and idle <-> min); the HPA, with min max(minReplicaCount, 1), owns 1 <-> N.
    """

    def __init__(self, trigger: KafkaTrigger, spec: ScaledObjectSpec, hpa: HpaBehavior | None = None) -> None:
        self.trigger = trigger
        self.spec = spec
        self.last_active: float | None = None
        self._hpa = Hpa(max(spec.min_replicas, 1), spec.max_replicas, hpa)

    def _hpa_step(self, now: float, report: LagReport, current: int) -> tuple[int, str]:
        replicas = self._hpa.desired(now, current, report.total_lag, self.trigger.lag_threshold)
        return replicas, f"hpa: lag {report.total_lag} / {self.trigger.lag_threshold}"

    def decide(self, now: float, report: LagReport, current_replicas: int) -> ScaleDecision:
        spec, current = self.spec, current_replicas
        idle = spec.idle_replicas
        if report.active:
            self.last_active = now
            if current == 0 or (idle is not None and current < spec.min_replicas):
                origin = "zero" if current == 0 else "idle"
                return ScaleDecision(max(spec.min_replicas, 1), f"activated from {origin}")
            return ScaleDecision(*self._hpa_step(now, report, current))
        if (idle is not None and current > idle) or (current > 0 and spec.min_replicas == 0):
            # Upstream: LastActiveTime + cooldownPeriod must be strictly before now.
            if self.last_active is None or now > self.last_active + spec.cooldown_period_s:
                target = idle if idle is not None else spec.min_replicas
                why = "cooldown elapsed" if self.last_active is not None else "inactive, never active"
                return ScaleDecision(target, why)
            replicas, why = self._hpa_step(now, report, current)
            return ScaleDecision(replicas, f"cooling down; {why}")
        if idle is None and current < spec.min_replicas:
            return ScaleDecision(spec.min_replicas, "below minReplicaCount")
        if current == 0:
            return ScaleDecision(0, "inactive at zero")
        return ScaleDecision(*self._hpa_step(now, report, current))
