from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from scalers.kpa import Kpa, KpaDecision, KpaSpec

P = "autoscaling.knative.dev/"
TEN: dict[str, Any] = {
    "target": 10,
    "target_utilization_percentage": 100,
}  # effective target 10 keeps the arithmetic readable


def rec(t: float, value: float) -> tuple[Any, ...]:
    return ("rec", t, value)


def poke(t: float) -> tuple[Any, ...]:
    return ("poke", t)


def dec(t: float, ready: int, current: int, *want: Any) -> tuple[Any, ...]:
    """decide(t, ready, current) must answer KpaDecision(desired, panicking, stable, panic, reason)."""
    return ("dec", t, ready, current, KpaDecision(*want))


def steady(first: int, last: int, value: float) -> list[tuple[Any, ...]]:
    """One sample a second, at first..last inclusive."""
    return [rec(float(t), value) for t in range(first, last + 1)]


def boot(ready: int = 1) -> tuple[Any, ...]:
    """The first decision: no samples yet, so the initial scale (1) is asked for."""
    return dec(0, ready, ready, 1, False, 0.0, 0.0, "no-data")


def isvc(metadata_annotations: dict[str, str] | None = None, **predictor: Any) -> dict[str, Any]:
    """An InferenceService as parsed from YAML; keyword arguments become spec.predictor fields."""
    return {"metadata": {"name": "m", "annotations": metadata_annotations or {}}, "spec": {"predictor": predictor}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(KpaSpec(), 70.0, id="defaults-100-times-70pc"),
        pytest.param(KpaSpec(target_utilization_percentage=100), 100.0, id="unlimited-cc-default-100"),
        pytest.param(KpaSpec(container_concurrency=10), 7.0, id="cc-10"),
        pytest.param(KpaSpec(container_concurrency=10, target=5), 3.5, id="target-below-cc"),
        pytest.param(KpaSpec(container_concurrency=10, target=50), 7.0, id="target-capped-by-cc"),
        pytest.param(KpaSpec(target=50), 35.0, id="target-without-cc"),
        pytest.param(KpaSpec(target=1, target_utilization_percentage=75), 0.75, id="fractional-target"),
        pytest.param(KpaSpec(container_concurrency=1, target_utilization_percentage=100), 1.0, id="cc-1-full"),
        pytest.param(KpaSpec(target=0.01, target_utilization_percentage=1), 0.01, id="floor-target-min"),
        pytest.param(KpaSpec(metric="rps"), 140.0, id="rps-default-200"),
        pytest.param(KpaSpec(metric="rps", target=300), 210.0, id="rps-target"),
        pytest.param(KpaSpec(metric="rps", container_concurrency=1), 140.0, id="rps-ignores-cc"),
    ],
)
def test_effective_target(spec: KpaSpec, expected: float) -> None:
    assert spec.effective_target == pytest.approx(expected)


@pytest.mark.parametrize(
    ("window", "percentage", "expected"),
    [(60, 10, 6.0), (6, 10, 1.0), (60, 1, 1.0), (35, 10, 4.0), (25, 10, 3.0), (3600, 100, 3600.0), (6, 1, 1.0)],
    ids=["defaults", "rounds-0.6-up", "one-percent", "half-rounds-up", "2.5-rounds-up", "max", "at-least-1s"],
)
def test_panic_window(window: float, percentage: float, expected: float) -> None:
    assert KpaSpec(stable_window_s=window, panic_window_percentage=percentage).panic_window_s == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stable_window_s": 5}, "window must be in"),
        ({"stable_window_s": 3601}, "window must be in"),
        ({"stable_window_s": 60.5}, "whole seconds"),
        ({"panic_window_percentage": 0.5}, "panic-window-percentage"),
        ({"panic_window_percentage": 101}, "panic-window-percentage"),
        ({"panic_threshold_percentage": 109}, "panic-threshold-percentage"),
        ({"panic_threshold_percentage": 1001}, "panic-threshold-percentage"),
        ({"max_scale_up_rate": 1}, "max-scale-up-rate"),
        ({"max_scale_down_rate": 1.0}, "max-scale-down-rate"),
        ({"scale_to_zero_grace_period_s": 0}, "grace-period"),
        ({"scale_to_zero_pod_retention_period_s": -1}, "retention"),
        ({"scale_to_zero_pod_retention_period_s": 3601}, "retention"),
        ({"activation_scale": 0}, "activation-scale"),
        ({"initial_scale": -1}, "initial-scale"),
        ({"min_scale": -1}, "min-scale"),
        ({"min_scale": 3, "max_scale": 2}, "less than min-scale"),
        ({"target": 0.001}, "target must be"),
        ({"target_utilization_percentage": 0}, "target-utilization-percentage"),
        ({"target_utilization_percentage": 101}, "target-utilization-percentage"),
        ({"metric": "cpu"}, "metric must be"),
        ({"container_concurrency": -1}, "containerConcurrency"),
        ({"tick_interval_s": 0}, "tick interval"),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else "",
)
def test_spec_rejects_out_of_range(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        KpaSpec(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "panic_window_s"),
    [
        ({"stable_window_s": 6, "panic_window_percentage": 1, "panic_threshold_percentage": 110}, 1.0),
        ({"stable_window_s": 3600, "panic_window_percentage": 100, "panic_threshold_percentage": 1000}, 3600.0),
        ({"max_scale_up_rate": 1.001, "max_scale_down_rate": 1.001, "min_scale": 2, "max_scale": 2}, 6.0),
    ],
    ids=["lower-ends", "upper-ends", "rates-just-above-1-and-min-equals-max"],
)
def test_spec_accepts_the_range_ends(kwargs: dict[str, Any], panic_window_s: float) -> None:
    spec = KpaSpec(**kwargs)
    assert {name: getattr(spec, name) for name in kwargs} == kwargs
    assert spec.panic_window_s == panic_window_s


@pytest.mark.parametrize(
    ("resource", "grace", "expected"),
    [
        pytest.param(isvc(), None, KpaSpec(min_scale=1), id="bare-kserve-min-replicas-defaults-to-1"),
        pytest.param(isvc(minReplicas=None), None, KpaSpec(min_scale=1), id="null-min-replicas-is-unset"),
        pytest.param(
            isvc(minReplicas=0, maxReplicas=5, scaleTarget=10, scaleMetric="rps", containerConcurrency=4),
            None,
            KpaSpec(min_scale=0, max_scale=5, target=10, metric="rps", container_concurrency=4),
            id="predictor-fields",
        ),
        pytest.param(
            isvc(
                {
                    P + "class": "kpa.autoscaling.knative.dev",
                    P + "metric": "concurrency",
                    P + "window": "2m",
                    P + "target": "25",
                    P + "target-utilization-percentage": "80",
                    P + "panic-window-percentage": "20",
                    P + "panic-threshold-percentage": "150",
                    P + "max-scale-up-rate": "10",
                    P + "max-scale-down-rate": "4",
                    P + "scale-to-zero-pod-retention-period": "1m30s",
                    P + "activation-scale": "3",
                    P + "initial-scale": "2",
                    P + "max-scale": "7",
                },
                minReplicas=0,
            ),
            None,
            KpaSpec(
                stable_window_s=120,
                target=25,
                target_utilization_percentage=80,
                panic_window_percentage=20,
                panic_threshold_percentage=150,
                max_scale_up_rate=10,
                max_scale_down_rate=4,
                scale_to_zero_pod_retention_period_s=90,
                activation_scale=3,
                initial_scale=2,
                min_scale=0,
                max_scale=7,
            ),
            id="all-annotations",
        ),
        pytest.param(
            isvc(
                {P + "min-scale": "3", P + "max-scale": "9", P + "target": "50", P + "metric": "rps"},
                minReplicas=1,
                maxReplicas=4,
                scaleTarget=5,
                scaleMetric="concurrency",
            ),
            None,
            KpaSpec(min_scale=1, max_scale=4, target=5),
            id="predictor-fields-beat-annotations",
        ),
        pytest.param(isvc({P + "min-scale": "0"}), None, KpaSpec(min_scale=1), id="kserve-overwrites-min-scale"),
        pytest.param(
            isvc({P + "max-scale": "6"}, maxReplicas=0), None, KpaSpec(min_scale=1, max_scale=6), id="max-replicas-0"
        ),
        pytest.param(
            isvc(
                {
                    P + "initialScale": "3",
                    P + "panicWindowPercentage": "5",
                    P + "scaleToZeroPodRetentionPeriod": "10s",
                    P + "targetUtilizationPercentage": "90",
                }
            ),
            None,
            KpaSpec(
                min_scale=1,
                initial_scale=3,
                panic_window_percentage=5,
                scale_to_zero_pod_retention_period_s=10,
                target_utilization_percentage=90,
            ),
            id="legacy-camel-case-keys",
        ),
        pytest.param(
            isvc({P + "panicThresholdPercentage": "300", P + "panic-threshold-percentage": "400"}),
            None,
            KpaSpec(min_scale=1, panic_threshold_percentage=400),
            id="kebab-case-beats-legacy",
        ),
        pytest.param(
            isvc({P + "window": "30s"}, annotations={P + "window": "90s"}),
            None,
            KpaSpec(min_scale=1, stable_window_s=90),
            id="predictor-annotations-beat-metadata",
        ),
        pytest.param(
            isvc({"serving.kserve.io/deploymentMode": "Serverless"}),
            45,
            KpaSpec(min_scale=1, scale_to_zero_grace_period_s=45),
            id="grace-period-from-cluster-config",
        ),
    ],
)
def test_from_inference_service(resource: dict[str, Any], grace: float | None, expected: KpaSpec) -> None:
    assert KpaSpec.from_inference_service(resource, grace_period_s=grace) == expected


@pytest.mark.parametrize(
    ("resource", "match"),
    [
        pytest.param(isvc({P + "window": "5s"}), "window must be in", id="window-too-short"),
        pytest.param(isvc({P + "window": "1h1s"}), "window must be in", id="window-too-long"),
        pytest.param(isvc({P + "window": "60"}), "not a duration", id="window-without-unit"),
        pytest.param(isvc({P + "window": "60.5s"}), "whole seconds", id="window-fraction"),
        pytest.param(isvc({P + "panic-threshold-percentage": "abc"}), "not a number", id="threshold-nan-text"),
        pytest.param(isvc({P + "panic-threshold-percentage": "100"}), "in \\[110, 1000\\]", id="threshold-low"),
        pytest.param(isvc({P + "target": "0"}), "target must be", id="target-zero"),
        pytest.param(isvc({P + "target": "nan"}), "not a finite", id="target-nan"),
        pytest.param(isvc({P + "target-utilization-percentage": "0.5"}), "\\[1, 100\\]", id="utilisation-low"),
        pytest.param(isvc({P + "activation-scale": "0"}), "activation-scale", id="activation-zero"),
        pytest.param(isvc({P + "activation-scale": "1.5"}), "not an integer", id="activation-fraction"),
        pytest.param(isvc({P + "max-scale-down-rate": "1"}), "must be > 1", id="down-rate-one"),
        pytest.param(isvc({P + "scale-to-zero-pod-retention-period": "-1s"}), "duration", id="retention-negative"),
        pytest.param(isvc({P + "class": "hpa.autoscaling.knative.dev"}), "only", id="hpa-class"),
        pytest.param(isvc(scaleMetric="cpu"), "metric must be", id="cpu-metric"),
        pytest.param(isvc(minReplicas=3, maxReplicas=2), "less than min-scale", id="max-below-min"),
        pytest.param(isvc(minReplicas=-1), "must be >= 0", id="negative-min-replicas"),
        pytest.param(isvc(minReplicas="1"), "spec.predictor.minReplicas", id="min-replicas-as-text"),
    ],
)
def test_from_inference_service_rejects(resource: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        KpaSpec.from_inference_service(resource)


def test_initial_scale_zero_follows_allow_zero_initial_scale() -> None:
    resource = isvc({P + "initial-scale": "0"}, minReplicas=0)
    assert KpaSpec.from_inference_service(resource) == KpaSpec(initial_scale=0)
    with pytest.raises(ValueError, match="allow-zero-initial-scale"):
        KpaSpec.from_inference_service(resource, allow_zero_initial_scale=False)
    with pytest.raises(ValueError, match="initial-scale"):
        KpaSpec.from_inference_service(isvc({P + "initial-scale": "-1"}))


def test_project_inference_services_scale_from_zero_to_four_at_eleven_requests_per_replica() -> None:
    root = Path(__file__).parents[2]
    specs = {
        path.parent.name: KpaSpec.from_inference_service(yaml.safe_load(path.read_text()))
        for path in sorted(root.glob("manifests/**/inferenceservice.yaml"))
    }
    # scaleTarget 16 at 70 % utilisation, under containerConcurrency 64; Knative's defaults otherwise.
    expected = KpaSpec(container_concurrency=64, target=16, initial_scale=0, min_scale=0, max_scale=4)
    assert specs == {"classifier": expected, "embedder": expected, "generator": expected}
    assert expected.effective_target == pytest.approx(11.2)


DECISIONS = [
    pytest.param(
        KpaSpec(),
        [
            dec(0, 0, 0, 1, False, 0.0, 0.0, "no-data"),  # initial scale until a pod is ready
            dec(2, 1, 1, 1, False, 0.0, 0.0, "no-data"),
            dec(4, 1, 3, 3, False, 0.0, 0.0, "no-data"),  # initialised: hold what is requested
        ],
        id="no-data-initial-scale-then-hold",
    ),
    pytest.param(
        KpaSpec(initial_scale=0), [dec(0, 0, 0, 0, False, 0.0, 0.0, "no-data")], id="no-data-initial-scale-zero"
    ),
    pytest.param(
        KpaSpec(),
        [
            dec(0, 3, 3, 3, True, 0.0, 0.0, "no-data"),  # a restarted autoscaler starts in panic
            *steady(1, 4, 10.0),
            dec(4, 3, 3, 3, True, 10.0, 10.0, "panic"),  # wants 1, keeps 3
            *steady(5, 60, 10.0),
            dec(60, 3, 3, 3, True, 10.0, 10.0, "panic"),  # exactly a stable window: still panicking
            rec(61, 10.0),
            dec(61, 3, 3, 1, False, 10.0, 10.0, "stable"),  # 3 -> floor(3 / 2) = 1
        ],
        id="restart-starts-in-panic",
    ),
    pytest.param(
        KpaSpec(),
        [boot(), *steady(0, 9, 140.0), dec(9, 2, 2, 2, False, 140.0, 140.0, "stable")],
        id="steady-140-is-2-pods-of-70",
    ),
    pytest.param(
        KpaSpec(),
        [boot(), *steady(0, 9, 141.0), dec(9, 3, 3, 3, False, 141.0, 141.0, "stable")],
        id="steady-141-rounds-up-to-3",
    ),
    pytest.param(
        KpaSpec(),
        [boot(), rec(0.0, 100.0), rec(0.5, 200.0), rec(1.2, 30.0), dec(1.9, 2, 2, 2, False, 90.0, 90.0, "stable")],
        id="samples-averaged-per-second-then-over-seconds",
    ),
    pytest.param(
        KpaSpec(),
        [
            boot(),
            rec(0, 70.0),
            rec(3, 70.0),
            dec(3, 1, 1, 1, False, 35.0, 35.0, "stable"),  # seconds 1 and 2 count as zero
            dec(5, 1, 1, 1, False, 35.0, 35.0, "stable"),  # seconds 4 and 5 have no sample: left out
            dec(8, 1, 1, 1, False, 35.0, 70.0, "stable"),  # the panic window only holds second 3
            dec(9, 1, 1, 1, False, 35.0, 0.0, "stable"),
            dec(63, 1, 1, 1, False, 0.0, 0.0, "scale-to-zero-grace"),  # a window after the last sample: 0
            dec(64, 1, 1, 1, False, 0.0, 0.0, "no-data"),
        ],
        id="window-gaps-and-silence",
    ),
    pytest.param(
        KpaSpec(**TEN),
        [boot(), *steady(0, 5, 2000.0), dec(5, 100, 100, 200, True, 2000.0, 2000.0, "panic")],
        id="panic-at-exactly-200-percent",
    ),
    pytest.param(
        KpaSpec(**TEN),
        [boot(), *steady(0, 5, 1990.0), dec(5, 100, 100, 199, False, 1990.0, 1990.0, "stable")],
        id="no-panic-at-199-percent",
    ),
    pytest.param(
        KpaSpec(**TEN),
        [
            boot(),
            *steady(1, 10, 100.0),
            dec(10, 1, 1, 10, True, 100.0, 100.0, "panic"),
            *steady(11, 20, 20.0),
            dec(20, 10, 10, 10, True, 60.0, 20.0, "panic"),  # wants 6, never down in panic
            *steady(21, 70, 20.0),
            dec(70, 10, 10, 10, True, 20.0, 20.0, "panic"),
            rec(71, 20.0),
            dec(71, 10, 10, 5, False, 20.0, 20.0, "stable"),  # a stable window after the last crossing
        ],
        id="panic-holds-then-exits",
    ),
    pytest.param(
        KpaSpec(**TEN),
        [
            boot(),
            *steady(1, 10, 100.0),
            dec(10, 1, 1, 10, True, 100.0, 100.0, "panic"),
            *steady(11, 40, 100.0),
            dec(40, 1, 1, 10, True, 100.0, 100.0, "panic"),  # still over the threshold: panic restarts at 40
            *steady(41, 100, 100.0),
            dec(100, 10, 10, 10, True, 100.0, 100.0, "panic"),
            rec(101, 100.0),
            dec(101, 10, 10, 10, False, 100.0, 100.0, "stable"),
        ],
        id="panic-extends-while-over-threshold",
    ),
    pytest.param(
        KpaSpec(**TEN, max_scale_up_rate=2, panic_threshold_percentage=1000),
        [
            boot(),
            *steady(1, 5, 100.0),
            dec(5, 2, 2, 4, False, 100.0, 100.0, "stable"),
            *steady(6, 7, 100.0),
            dec(7, 4, 4, 8, False, 100.0, 100.0, "stable"),
            *steady(8, 9, 100.0),
            dec(9, 8, 8, 10, False, 100.0, 100.0, "stable"),
        ],
        id="scale-up-rate-doubles-per-tick",
    ),
    pytest.param(
        KpaSpec(**TEN, max_scale_up_rate=1.1, panic_threshold_percentage=1000),
        [boot(), *steady(1, 3, 50.0), dec(3, 2, 2, 3, False, 50.0, 50.0, "stable")],
        id="scale-up-rate-allows-one-more-pod",
    ),
    pytest.param(
        KpaSpec(**TEN),
        [
            boot(),
            *steady(1, 5, 10.0),
            dec(5, 10, 10, 5, False, 10.0, 10.0, "stable"),
            *steady(6, 7, 10.0),
            dec(7, 5, 5, 2, False, 10.0, 10.0, "stable"),
            dec(7, 2, 2, 1, False, 10.0, 10.0, "stable"),
        ],
        id="scale-down-rate-halves-per-tick",
    ),
    pytest.param(
        KpaSpec(**TEN, max_scale_down_rate=4),
        [boot(), *steady(1, 5, 10.0), dec(5, 10, 10, 2, False, 10.0, 10.0, "stable")],
        id="scale-down-rate-4",
    ),
    pytest.param(
        KpaSpec(activation_scale=3),
        [boot(), *steady(0, 2, 5.0), dec(2, 1, 1, 3, False, 5.0, 5.0, "stable")],
        id="activation-scale-lifts-small-load",
    ),
    pytest.param(
        KpaSpec(activation_scale=3, max_scale_up_rate=1.5),
        [boot(), *steady(0, 2, 5.0), dec(2, 1, 1, 3, False, 5.0, 5.0, "stable")],
        id="activation-scale-after-rate-limit",
    ),
    pytest.param(
        KpaSpec(activation_scale=3, max_scale=2),
        [boot(), *steady(0, 2, 5.0), dec(2, 1, 1, 2, False, 5.0, 5.0, "stable")],
        id="activation-scale-capped-by-max-scale",
    ),
    pytest.param(
        KpaSpec(activation_scale=3),
        [boot(), *steady(0, 5, 0.0), dec(5, 1, 1, 1, False, 0.0, 0.0, "idle-active")],
        id="activation-scale-needs-traffic",
    ),
    pytest.param(
        KpaSpec(activation_scale=2, initial_scale=0),
        [
            dec(0, 0, 0, 0, False, 0.0, 0.0, "no-data"),
            poke(120.3),
            dec(120.3, 0, 0, 2, False, 1.0, 1.0, "stable"),
            dec(122.0, 0, 2, 2, False, 1.0, 1.0, "stable"),  # pods still starting
        ],
        id="poke-from-zero-to-activation-scale",
    ),
    pytest.param(
        KpaSpec(activation_scale=2, initial_scale=0),
        [
            dec(0, 0, 0, 0, False, 0.0, 0.0, "no-data"),
            *steady(61, 100, 0.0),
            dec(100, 0, 0, 0, False, 0.0, 0.0, "scaled-to-zero"),
            *steady(101, 120, 0.0),
            poke(120.5),
            dec(120.5, 0, 0, 2, False, 0.008333, 0.083333, "stable"),  # bucket 120 averages 0 and 1
        ],
        id="poke-after-idle-zeros",
    ),
    pytest.param(
        KpaSpec(),
        [
            boot(),
            *steady(0, 9, 35.0),
            dec(10, 1, 1, 1, False, 35.0, 35.0, "stable"),
            *steady(10, 68, 0.0),
            dec(68, 1, 1, 1, False, 0.583333, 0.0, "stable"),  # second 9 is still in the window
            rec(69, 0.0),
            dec(69, 1, 1, 1, False, 0.0, 0.0, "scale-to-zero-grace"),  # a window without traffic
            *steady(70, 98, 0.0),
            dec(98, 1, 1, 1, False, 0.0, 0.0, "scale-to-zero-grace"),
            rec(99, 0.0),
            dec(99, 1, 1, 0, False, 0.0, 0.0, "scaled-to-zero"),  # and then the 30 s grace period
        ],
        id="scale-to-zero-after-window-then-grace",
    ),
    pytest.param(
        KpaSpec(scale_to_zero_pod_retention_period_s=45),
        [
            boot(),
            *steady(0, 9, 35.0),
            *steady(10, 69, 0.0),
            dec(69, 1, 1, 1, False, 0.0, 0.0, "scale-to-zero-grace"),
            *steady(70, 113, 0.0),
            dec(113, 1, 1, 1, False, 0.0, 0.0, "scale-to-zero-grace"),
            rec(114, 0.0),
            dec(114, 1, 1, 0, False, 0.0, 0.0, "scaled-to-zero"),
        ],
        id="pod-retention-longer-than-grace",
    ),
    pytest.param(
        KpaSpec(),
        [
            boot(),
            *steady(0, 9, 35.0),
            *steady(10, 69, 0.0),
            dec(69, 1, 1, 1, False, 0.0, 0.0, "scale-to-zero-grace"),
            *steady(70, 79, 0.0),
            rec(80, 35.0),
            dec(80, 1, 1, 1, False, 0.583333, 5.833333, "stable"),  # traffic during the grace period
            *steady(81, 139, 0.0),
            dec(139, 1, 1, 1, False, 0.583333, 0.0, "stable"),
            rec(140, 0.0),
            dec(140, 1, 1, 1, False, 0.0, 0.0, "scale-to-zero-grace"),  # the clock starts again
            *steady(141, 170, 0.0),
            dec(170, 1, 1, 0, False, 0.0, 0.0, "scaled-to-zero"),
        ],
        id="traffic-during-grace-restarts-the-clock",
    ),
    pytest.param(
        KpaSpec(),
        [
            dec(0, 0, 0, 1, False, 0.0, 0.0, "no-data"),
            *steady(0, 5, 0.0),
            dec(5, 1, 1, 1, False, 0.0, 0.0, "stable"),  # initial scale until the first pod is ready
            *steady(6, 7, 0.0),
            dec(7, 1, 1, 1, False, 0.0, 0.0, "idle-active"),  # active since 5: kept a stable window
            *steady(8, 65, 0.0),
            dec(65, 1, 1, 1, False, 0.0, 0.0, "scale-to-zero-grace"),
            *steady(66, 95, 0.0),
            dec(95, 1, 1, 0, False, 0.0, 0.0, "scaled-to-zero"),
        ],
        id="unused-initial-pod-goes-after-window-and-grace",
    ),
    pytest.param(
        KpaSpec(min_scale=2),
        [
            dec(0, 1, 1, 2, False, 0.0, 0.0, "no-data"),
            *steady(0, 10, 0.0),
            dec(10, 2, 2, 2, False, 0.0, 0.0, "stable"),
            *steady(11, 200, 0.0),
            dec(200, 2, 2, 2, False, 0.0, 0.0, "stable"),
        ],
        id="min-scale-holds-without-traffic",
    ),
    pytest.param(
        KpaSpec(max_scale=3),
        [boot(), *steady(0, 5, 700.0), dec(5, 1, 1, 3, True, 700.0, 700.0, "panic")],
        id="max-scale-caps",
    ),
    pytest.param(
        KpaSpec(max_scale=0),
        [boot(), *steady(0, 5, 700.0), dec(5, 1, 1, 10, True, 700.0, 700.0, "panic")],
        id="max-scale-0-unbounded",
    ),
]


@pytest.mark.parametrize(("spec", "events"), DECISIONS)
def test_decisions(spec: KpaSpec, events: list[tuple[Any, ...]]) -> None:
    kpa = Kpa(spec)
    got, want = [], []
    for event in events:
        if event[0] == "rec":
            kpa.record(event[1], event[2])
        elif event[0] == "poke":
            kpa.poke(event[1])
        else:
            got.append((event[1], kpa.decide(event[1], event[2], event[3])))
            want.append((event[1], event[4]))
    assert got == want
