"""Knative Pod Autoscaler (KPA) decisions: a pure function of the samples seen and the time passed in.

Re-implemented from knative/serving (pkg/autoscaler/scaling/autoscaler.go, pkg/autoscaler/aggregation/,
pkg/reconciler/autoscaling/kpa/); docs/scaling.md ("Knative KPA") lists the sources and the simplifications.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

PREFIX = "autoscaling.knative.dev/"
KPA_CLASS = "kpa.autoscaling.knative.dev"
KSERVE_DEFAULT_MIN_REPLICAS = 1
_CC_TARGET_DEFAULT = 100.0  # config-autoscaler container-concurrency-target-default
_RPS_TARGET_DEFAULT = 200.0  # config-autoscaler requests-per-second-target-default
_TARGET_MIN = 0.01
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _number(raw: str, key: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{key}: {raw!r} is not a finite number")
    return value


def _integer(raw: str, key: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", raw):
        raise ValueError(f"{key}: {raw!r} is not an integer")
    return int(raw)


def _seconds(raw: str, key: str) -> float:
    """A Go duration string ("60s", "1m30s", "500ms") in seconds, as time.ParseDuration reads it."""
    if raw == "0":
        return 0.0
    if not re.fullmatch(rf"(?:{_DURATION.pattern})+", raw):
        raise ValueError(f"{key}: {raw!r} is not a duration such as '60s' or '1m30s'")
    return sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION.findall(raw))


def _field(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"spec.predictor.{name}: {value!r} is not an integer")
    return value


# (KpaSpec field, annotation key, legacy camelCase key, parser). The kebab-case key wins, as in Knative.
_ANNOTATIONS: tuple[tuple[str, str, str | None, Any], ...] = (
    ("metric", "metric", None, lambda raw, _key: raw),
    ("target", "target", None, _number),
    ("target_utilization_percentage", "target-utilization-percentage", "targetUtilizationPercentage", _number),
    ("stable_window_s", "window", None, _seconds),
    ("panic_window_percentage", "panic-window-percentage", "panicWindowPercentage", _number),
    ("panic_threshold_percentage", "panic-threshold-percentage", "panicThresholdPercentage", _number),
    ("max_scale_up_rate", "max-scale-up-rate", None, _number),
    ("max_scale_down_rate", "max-scale-down-rate", None, _number),
    (
        "scale_to_zero_pod_retention_period_s",
        "scale-to-zero-pod-retention-period",
        "scaleToZeroPodRetentionPeriod",
        _seconds,
    ),
    ("activation_scale", "activation-scale", None, _integer),
    ("initial_scale", "initial-scale", "initialScale", _integer),
    ("min_scale", "min-scale", "minScale", _integer),
    ("max_scale", "max-scale", "maxScale", _integer),
)


@dataclass(frozen=True)
class KpaSpec:
    """The knobs of one revision's KPA; defaults are Knative's config-autoscaler defaults."""

    container_concurrency: int = 0  # 0 = unlimited
    target: float | None = None  # autoscaling.knative.dev/target (KServe: spec.predictor.scaleTarget)
    target_utilization_percentage: float = 70
    metric: Literal["concurrency", "rps"] = "concurrency"
    stable_window_s: float = 60
    panic_window_percentage: float = 10
    panic_threshold_percentage: float = 200
    max_scale_up_rate: float = 1000
    max_scale_down_rate: float = 2
    scale_to_zero_grace_period_s: float = 30
    scale_to_zero_pod_retention_period_s: float = 0
    activation_scale: int = 1
    initial_scale: int = 1
    min_scale: int = 0
    max_scale: int = 0  # 0 = unbounded
    tick_interval_s: float = 2  # how often the caller should call Kpa.decide

    def __post_init__(self) -> None:
        checks = (
            (self.container_concurrency >= 0, f"containerConcurrency must be >= 0, got {self.container_concurrency}"),
            (self.target is None or self.target >= _TARGET_MIN, f"target must be >= {_TARGET_MIN}, got {self.target}"),
            (1 <= self.target_utilization_percentage <= 100, "target-utilization-percentage must be in [1, 100]"),
            (self.metric in ("concurrency", "rps"), f"metric must be 'concurrency' or 'rps', got {self.metric!r}"),
            (6 <= self.stable_window_s <= 3600, f"window must be in [6s, 1h], got {self.stable_window_s}s"),
            (float(self.stable_window_s).is_integer(), f"window must be whole seconds, got {self.stable_window_s}s"),
            (1 <= self.panic_window_percentage <= 100, "panic-window-percentage must be in [1, 100]"),
            (110 <= self.panic_threshold_percentage <= 1000, "panic-threshold-percentage must be in [110, 1000]"),
            (self.max_scale_up_rate > 1, f"max-scale-up-rate must be > 1, got {self.max_scale_up_rate}"),
            (self.max_scale_down_rate > 1, f"max-scale-down-rate must be > 1, got {self.max_scale_down_rate}"),
            (self.scale_to_zero_grace_period_s > 0, "scale-to-zero-grace-period must be positive"),
            (0 <= self.scale_to_zero_pod_retention_period_s <= 3600, "scale-to-zero-pod-retention-period: [0s, 1h]"),
            (self.activation_scale >= 1, f"activation-scale must be >= 1, got {self.activation_scale}"),
            (self.initial_scale >= 0, f"initial-scale must be >= 0, got {self.initial_scale}"),
            (self.min_scale >= 0 and self.max_scale >= 0, "min-scale and max-scale must be >= 0"),
            (self.max_scale == 0 or self.max_scale >= self.min_scale, "max-scale is less than min-scale"),
            (self.tick_interval_s > 0, "tick interval must be positive"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def effective_target(self) -> float:
        """Per-pod target: (target, else containerConcurrency, else the default) capped by cc, times utilisation."""
        if self.metric == "rps":
            total = _RPS_TARGET_DEFAULT if self.target is None else self.target
        elif self.target is None:
            total = float(self.container_concurrency) or _CC_TARGET_DEFAULT
        else:
            total = min(self.target, self.container_concurrency) if self.container_concurrency else self.target
        return max(_TARGET_MIN, total * (self.target_utilization_percentage / 100))

    @property
    def panic_window_s(self) -> float:
        """The stable window times the panic percentage, rounded to whole seconds (half away from zero), >= 1 s."""
        return max(1.0, float(math.floor(self.stable_window_s * self.panic_window_percentage / 100 + 0.5)))

    @classmethod
    def from_inference_service(
        cls, isvc: Mapping[str, Any], *, grace_period_s: float | None = None, allow_zero_initial_scale: bool = True
    ) -> KpaSpec:
        """Read a KServe InferenceService the way KServe and Knative would; invalid values raise ValueError.

        The keywords are config-autoscaler's cluster-wide scale-to-zero-grace-period and allow-zero-initial-scale
        (Knative's default is false; wakeserve's manifests start at zero, so true is the default here).
        """
        predictor = (isvc.get("spec") or {}).get("predictor") or {}
        # KServe unions the InferenceService annotations with the component's own, the component's winning.
        annotations = {
            **((isvc.get("metadata") or {}).get("annotations") or {}),
            **(predictor.get("annotations") or {}),
        }
        # Then it writes the predictor fields over the matching annotations (minReplicas unset means 1).
        min_replicas = predictor.get("minReplicas")
        min_replicas = KSERVE_DEFAULT_MIN_REPLICAS if min_replicas is None else _field(min_replicas, "minReplicas")
        annotations[PREFIX + "min-scale"] = str(min_replicas)
        if predictor.get("maxReplicas"):
            annotations[PREFIX + "max-scale"] = str(_field(predictor["maxReplicas"], "maxReplicas"))
        if predictor.get("scaleTarget") is not None:
            annotations[PREFIX + "target"] = str(_field(predictor["scaleTarget"], "scaleTarget"))
        if predictor.get("scaleMetric") is not None:
            annotations[PREFIX + "metric"] = str(predictor["scaleMetric"])
        autoscaler_class = annotations.get(PREFIX + "class", KPA_CLASS)
        if autoscaler_class != KPA_CLASS:
            raise ValueError(f"{PREFIX}class is {autoscaler_class!r}; only {KPA_CLASS!r} is modelled here")
        kwargs: dict[str, Any] = {}
        if predictor.get("containerConcurrency") is not None:
            kwargs["container_concurrency"] = _field(predictor["containerConcurrency"], "containerConcurrency")
        for name, key, legacy, parse in _ANNOTATIONS:
            found = [k for k in (PREFIX + key, legacy and PREFIX + legacy) if k and k in annotations]
            if found:
                kwargs[name] = parse(str(annotations[found[0]]), found[0])
        if kwargs.get("initial_scale") == 0 and not allow_zero_initial_scale:
            raise ValueError(f"{PREFIX}initial-scale 0 needs allow-zero-initial-scale: true in config-autoscaler")
        if grace_period_s is not None:
            kwargs["scale_to_zero_grace_period_s"] = grace_period_s
        return cls(**kwargs)


@dataclass(frozen=True)
class KpaDecision:
    """One tick's answer: the replica count to ask for and the inputs that produced it."""

    desired: int
    panicking: bool
    stable_concurrency: float
    panic_concurrency: float
    reason: str  # no-data | stable | panic | idle-active | scale-to-zero-grace | scaled-to-zero


class _Window:
    """1 s buckets averaged over a window, as Knative's TimedFloat64Buckets (partial windows at both ends)."""

    def __init__(self, seconds: float) -> None:
        self._n = int(seconds)
        self._buckets: dict[int, tuple[float, int]] = {}  # second -> (sum, count) of the samples in it
        self._first = self._last = 0
        self._empty = True

    def record(self, now: float, value: float) -> None:
        second = math.floor(now)
        if self._empty or second - self._last > self._n:
            self._buckets.clear()  # a whole window without data: the average restarts from this bucket
            self._first = self._last = second
            self._empty = False
        elif second <= self._last - self._n:
            return
        elif second > self._last:
            self._last = second
            self._buckets = {k: v for k, v in self._buckets.items() if k > second - self._n}
        total, count = self._buckets.get(second, (0.0, 0))
        self._buckets[second] = (total + value, count + 1)

    def is_empty(self, now: float) -> bool:
        return self._empty or math.floor(now) - self._last > self._n

    def average(self, now: float) -> float:
        late = math.floor(now) - self._last
        if self._empty or late >= self._n:
            return 0.0
        # Buckets missing between samples count as zero; seconds after the last sample are left out.
        low = max(self._last, self._last + late) - self._n
        total = sum(s / c for second, (s, c) in self._buckets.items() if low < second <= self._last)
        buckets = min(self._last - self._first + 1, self._n - max(late, 0))
        return math.floor(total / buckets * 1e6) / 1e6  # Knative keeps 6 decimals


class Kpa:
    """The decider plus the scale-to-zero/min/max handling, fed with concurrency samples."""

    def __init__(self, spec: KpaSpec) -> None:
        self.spec = spec
        self._stable = _Window(spec.stable_window_s)
        self._panic = _Window(spec.panic_window_s)
        self._started = self._initialised = False
        self._panic_since: float | None = None
        self._max_panic_pods = 0
        self._active_since: float | None = None
        self._inactive_since: float | None = None

    def record(self, now: float, concurrency: float) -> None:
        """One observation of in-flight requests (requests per second when the metric is rps), zeros included."""
        self._stable.record(now, concurrency)
        self._panic.record(now, concurrency)

    def poke(self, now: float) -> None:
        """A request reached the activator while at zero: its stat lets the next decide() scale up at once."""
        self.record(now, 1.0)

    def decide(self, now: float, ready_pods: int, current_pods: int) -> KpaDecision:
        """What to ask for at `now`, given the pods that serve and the pods already requested (held when waiting)."""
        spec = self.spec
        if not self._started:
            self._started = True
            if ready_pods > 1:  # a restarted autoscaler has no history: panic keeps it from shedding pods
                self._panic_since, self._max_panic_pods = now, ready_pods
        low = spec.min_scale if self._initialised else max(spec.min_scale, spec.initial_scale)
        stable = panic = 0.0
        if self._stable.is_empty(now):
            desired, reason = self._bound(low, current_pods), "no-data"
        else:
            stable, panic = self._stable.average(now), self._panic.average(now)
            desired = self._bound(low, self._decider(now, ready_pods, stable, panic))
            reason = "stable" if self._panic_since is None else "panic"
            if desired == 0:
                desired, reason = self._toward_zero(now, current_pods)
        if reason in ("stable", "panic"):
            self._inactive_since = None
        active = desired > 0 and ready_pods >= max(spec.min_scale, 1) and self._inactive_since is None
        if active and self._active_since is None:
            self._active_since = now
        if ready_pods >= max(spec.min_scale, spec.initial_scale):
            self._initialised = True
        return KpaDecision(desired, self._panic_since is not None, stable, panic, reason)

    def _decider(self, now: float, ready_pods: int, stable: float, panic: float) -> int:
        spec = self.spec
        ready = max(1, ready_pods)
        # Rates bound one tick's change, yet always allow one pod up or down.
        max_up, max_down = math.ceil(spec.max_scale_up_rate * ready), math.floor(ready / spec.max_scale_down_rate)
        stable_pods, panic_pods = math.ceil(stable / spec.effective_target), math.ceil(panic / spec.effective_target)
        desired_stable = min(max(stable_pods, max_down), max_up)
        desired_panic = min(max(panic_pods, max_down), max_up)
        if stable_pods > 0:
            desired_stable = max(desired_stable, spec.activation_scale)
        if panic_pods > 0:
            desired_panic = max(desired_panic, spec.activation_scale)
        if panic_pods / ready >= spec.panic_threshold_percentage / 100:
            self._panic_since = now
        elif self._panic_since is not None and self._panic_since + spec.stable_window_s < now:
            self._panic_since, self._max_panic_pods = None, 0
        if self._panic_since is None:
            return desired_stable
        self._max_panic_pods = max(self._max_panic_pods, desired_stable, desired_panic)  # never down in panic
        return self._max_panic_pods

    def _bound(self, low: int, desired: int) -> int:
        if desired < low:
            return low
        return min(desired, self.spec.max_scale) if self.spec.max_scale else desired

    def _toward_zero(self, now: float, current_pods: int) -> tuple[int, str]:
        spec = self.spec
        if self._inactive_since is None:
            if self._active_since is not None and now - self._active_since < spec.stable_window_s:
                return 1, "idle-active"  # Knative keeps one pod until the revision was active a stable window
            self._inactive_since, self._active_since = now, None
        wait = max(spec.scale_to_zero_grace_period_s, spec.scale_to_zero_pod_retention_period_s)
        if now - self._inactive_since < wait and current_pods > 0:
            return current_pods, "scale-to-zero-grace"
        return 0, "scaled-to-zero"
