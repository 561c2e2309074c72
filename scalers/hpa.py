"""The Kubernetes HPA controller's replica maths for one External metric with an AverageValue target.

Pure and deterministic: time is passed in (``now``, seconds, monotonic) and every upstream comparison keeps its
strictness, so a table of calls reproduces what ``kube-controller-manager`` would decide at those instants.
Sources and the quirks kept on purpose are listed in docs/scaling.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

PolicyKind = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]

DEFAULT_TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DEFAULT_DOWNSCALE_STABILIZATION_S = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization
LEGACY_SCALE_UP_FACTOR = 2.0  # used only when the HPA has no spec.behavior
LEGACY_SCALE_UP_MINIMUM = 4.0
_INT32_MAX = 2**31 - 1
_INT32_MIN = -(2**31)


@dataclass(frozen=True)
class ScalingPolicy:
    """At most ``value`` pods (``Pods``) or percent of the replicas at the period's start (``Percent``) per period."""

    kind: PolicyKind
    value: int
    period_s: float

    def __post_init__(self) -> None:
        if self.kind not in get_args(PolicyKind):
            raise ValueError(f"scaling policy kind must be Pods or Percent, not {self.kind!r}")
        if self.value <= 0:
            raise ValueError(f"scaling policy value must be > 0, not {self.value}")
        if self.period_s <= 0:
            raise ValueError(f"scaling policy period must be > 0 s, not {self.period_s}")

    def scale_up_bound(self, period_start: int) -> int:
        if self.kind == "Pods":
            return period_start + self.value
        return math.ceil(period_start * (1 + self.value / 100))  # rounded up so a small target can always grow

    def scale_down_bound(self, period_start: int) -> int:
        if self.kind == "Pods":
            return period_start - self.value
        return int(period_start * (1 - self.value / 100))  # truncated (Go's int32 conversion), not rounded up


@dataclass(frozen=True)
class ScalingRules:
    """One direction of ``spec.behavior``: a stabilisation window and rate-limit policies combined by select_policy."""

    stabilization_window_s: float
    select_policy: SelectPolicy
    policies: tuple[ScalingPolicy, ...]

    def __post_init__(self) -> None:
        if self.stabilization_window_s < 0:
            raise ValueError(f"stabilization window must be >= 0 s, not {self.stabilization_window_s}")
        if self.select_policy not in get_args(SelectPolicy):
            raise ValueError(f"selectPolicy must be Max, Min or Disabled, not {self.select_policy!r}")

    @property
    def longest_period_s(self) -> float:
        return max((p.period_s for p in self.policies), default=0.0)


# pkg/apis/autoscaling/v2/defaults.go (scale-down window: the controller flag's 300 s).
DEFAULT_SCALE_UP = ScalingRules(0, "Max", (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)))
DEFAULT_SCALE_DOWN = ScalingRules(DEFAULT_DOWNSCALE_STABILIZATION_S, "Max", (ScalingPolicy("Percent", 100, 15),))


@dataclass(frozen=True)
class HpaBehavior:
    """An HPA ``spec.behavior`` with Kubernetes' defaults, plus the usage-ratio tolerance."""

    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), not {self.tolerance}")


def average_value_proposal(current_replicas: int, metric_total: float, target_average: float, tolerance: float) -> int:
    """replica_calculator.go GetExternalPerPodMetricReplicas: keep current inside the tolerance band, else ceil."""
    if current_replicas > 0:
        ratio = metric_total / (target_average * current_replicas)
        if (1.0 - tolerance) <= ratio <= (1.0 + tolerance):
            return current_replicas
    # With zero replicas Go divides by zero (Inf or NaN): never inside the band.
    return min(math.ceil(metric_total / target_average), _INT32_MAX)


@dataclass
class _Sample:
    value: int
    at: float


def _record(samples: list[_Sample], value: int, now: float, reusable: int | None) -> None:
    # Upstream overwrites one expired slot instead of growing the list; kept so the history matches.
    if reusable is None:
        samples.append(_Sample(value, now))
    else:
        samples[reusable] = _Sample(value, now)


def _changes_within(events: list[_Sample], period_s: float, now: float) -> int:
    return sum(e.value for e in events if e.at > now - period_s)


class Hpa:
    """One HorizontalPodAutoscaler: remembers recommendations and scale events between calls, like the controller.

    ``behavior=None`` is an HPA without ``spec.behavior`` (what KEDA creates when the ScaledObject has no
    ``advanced.horizontalPodAutoscalerConfig.behavior``): the controller then takes its legacy path, a 300 s
    scale-down window and a scale-up cap of max(2 x current, 4) per sync, with no rate-limit history.
    """

    def __init__(self, min_replicas: int, max_replicas: int, behavior: HpaBehavior | None = None) -> None:
        if min_replicas < 0:
            raise ValueError(f"minReplicas must be >= 0, not {min_replicas}")
        if max_replicas < 1 or max_replicas < min_replicas:
            raise ValueError(f"maxReplicas must be >= 1 and >= minReplicas ({min_replicas}), not {max_replicas}")
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.behavior = behavior
        self._recommendations: list[_Sample] = []
        self._scale_up_events: list[_Sample] = []
        self._scale_down_events: list[_Sample] = []

    @property
    def tolerance(self) -> float:
        return self.behavior.tolerance if self.behavior else DEFAULT_TOLERANCE

    def desired(self, now: float, current_replicas: int, metric_total: float, target_average: float) -> int:
        """One reconcile (horizontal.go reconcileAutoscaler); a result != current counts as a scale event."""
        if target_average <= 0:
            raise ValueError(f"target average value must be > 0, not {target_average}")
        if current_replicas < 0:
            raise ValueError(f"current replicas must be >= 0, not {current_replicas}")
        if not self._recommendations:
            self._recommendations.append(_Sample(current_replicas, now))
        if current_replicas == 0 and self.min_replicas != 0:
            return 0  # "ScalingDisabled": the HPA leaves a target at zero alone
        if current_replicas > self.max_replicas:
            desired = self.max_replicas
        elif current_replicas < self.min_replicas:
            desired = self.min_replicas
        else:
            proposal = max(average_value_proposal(current_replicas, metric_total, target_average, self.tolerance), 0)
            if self.behavior is None:
                desired = self._normalize_legacy(now, current_replicas, proposal)
            else:
                desired = self._normalize(now, current_replicas, proposal, self.behavior)
        if desired != current_replicas and self.behavior is not None:
            self._store_scale_event(now, current_replicas, desired, self.behavior)
        return desired

    def _normalize_legacy(self, now: float, current: int, proposal: int) -> int:
        cutoff = now - DEFAULT_DOWNSCALE_STABILIZATION_S
        stabilized, reusable = proposal, None
        for i, rec in enumerate(self._recommendations):
            if rec.at < cutoff:
                reusable = i
            elif rec.value > stabilized:
                stabilized = rec.value
        _record(self._recommendations, proposal, now, reusable)
        scale_up_limit = int(max(LEGACY_SCALE_UP_FACTOR * current, LEGACY_SCALE_UP_MINIMUM))
        return max(self.min_replicas, min(stabilized, self.max_replicas, scale_up_limit))

    def _normalize(self, now: float, current: int, proposal: int, behavior: HpaBehavior) -> int:
        stabilized = self._stabilize(now, current, proposal, behavior)
        if stabilized > current:
            up_limit = max(self._scale_up_limit(now, current, behavior.scale_up), current)
            return min(stabilized, self.max_replicas, up_limit)
        if stabilized < current:
            down_limit = min(self._scale_down_limit(now, current, behavior.scale_down), current)
            return max(stabilized, self.min_replicas, down_limit)
        return stabilized

    def _stabilize(self, now: float, current: int, proposal: int, behavior: HpaBehavior) -> int:
        up_cutoff = now - behavior.scale_up.stabilization_window_s
        down_cutoff = now - behavior.scale_down.stabilization_window_s
        up_bound = down_bound = proposal
        reusable = None
        for i, rec in enumerate(self._recommendations):
            if rec.at > up_cutoff:
                up_bound = min(up_bound, rec.value)
            if rec.at > down_cutoff:
                down_bound = max(down_bound, rec.value)
            if rec.at < up_cutoff and rec.at < down_cutoff:
                reusable = i
        _record(self._recommendations, proposal, now, reusable)
        return min(max(current, up_bound), down_bound)

    def _period_start(self, now: float, current: int, period_s: float) -> int:
        added = _changes_within(self._scale_up_events, period_s, now)
        removed = _changes_within(self._scale_down_events, period_s, now)
        return current - added + removed

    def _scale_up_limit(self, now: float, current: int, rules: ScalingRules) -> int:
        if rules.select_policy == "Disabled":
            return current
        pick: Callable[[int, int], int] = min if rules.select_policy == "Min" else max
        result = _INT32_MAX if rules.select_policy == "Min" else _INT32_MIN
        for policy in rules.policies:
            result = pick(result, policy.scale_up_bound(self._period_start(now, current, policy.period_s)))
        return result

    def _scale_down_limit(self, now: float, current: int, rules: ScalingRules) -> int:
        if rules.select_policy == "Disabled":
            return current
        # For scale-down the most permissive policy ("Max" change) is the lowest replica count.
        pick: Callable[[int, int], int] = max if rules.select_policy == "Min" else min
        result = _INT32_MIN if rules.select_policy == "Min" else _INT32_MAX
        for policy in rules.policies:
            result = pick(result, policy.scale_down_bound(self._period_start(now, current, policy.period_s)))
        return result

    def _store_scale_event(self, now: float, previous: int, new: int, behavior: HpaBehavior) -> None:
        if new > previous:
            events, change, longest = self._scale_up_events, new - previous, behavior.scale_up.longest_period_s
        else:
            events, change, longest = self._scale_down_events, previous - new, behavior.scale_down.longest_period_s
        reusable = None
        for i, event in enumerate(events):
            if event.at < now - longest:
                reusable = i
        _record(events, change, now, reusable)
