"""What the autoscaler of one function asks of its replica pool: the larger of the KPA and KEDA answers.

Pure: :class:`wakeserve.autoscaler.FunctionAutoscaler` reads offsets, runs both deciders on their own clocks
and scales the pool; this turns their latest answers into one replica count and its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalers.keda import ScaleDecision
from scalers.kpa import KpaDecision


@dataclass(frozen=True)
class ReplicaTarget:
    """The replica count to ask for, why, and whether the pool has to be told."""

    replicas: int
    reason: str  # "kpa: <KpaDecision.reason>" or "keda: <ScaleDecision.reason>"
    changed: bool


def combine(
    kpa: KpaDecision,
    keda: ScaleDecision | None,
    *,
    current: int,
    requested: int,
    min_replicas: int,
    max_replicas: int,
    rollout_running: bool = False,
) -> ReplicaTarget:
    """max(KPA, KEDA, min) capped at max; a tie is the KPA's, the one that answers held HTTP requests.

    ``current`` is the number of live replicas, ``requested`` the count last asked of the pool: the pool is
    told again when either differs, so a replica lost since the last ask is replaced. A running rollout keeps
    one replica, because its steps gather evidence there whether users send requests or not.
    """
    keda_wants = keda.replicas if keda is not None else 0
    floor = max(min_replicas, 1 if rollout_running else 0)
    replicas = min(max(kpa.desired, keda_wants, floor), max_replicas)
    changed = replicas != current or replicas != requested
    if keda is not None and keda_wants > kpa.desired:
        return ReplicaTarget(replicas, f"keda: {keda.reason}", changed)
    if rollout_running and kpa.desired < 1 <= replicas and min_replicas < 1:
        return ReplicaTarget(replicas, "rollout: a running rollout keeps one replica", changed)
    return ReplicaTarget(replicas, f"kpa: {kpa.reason}", changed)
