from __future__ import annotations

import pytest

from scalers.hpa import Hpa, HpaBehavior, ScalingPolicy, ScalingRules, average_value_proposal

NO_DOWN_WINDOW = ScalingRules(0, "Max", (ScalingPolicy("Percent", 100, 15),))


def run(hpa: Hpa, calls: list[tuple[float, int, float]], target: float = 10) -> list[int]:
    """Feed (now, current replicas, metric total) calls; return what the HPA answered to each."""
    return [hpa.desired(now, current, total, target) for now, current, total in calls]


def test_behavior_defaults_are_kubernetes_defaults():
    b = HpaBehavior()
    assert b.scale_up == ScalingRules(0, "Max", (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)))
    assert b.scale_down == ScalingRules(300, "Max", (ScalingPolicy("Percent", 100, 15),))
    assert b.tolerance == 0.1


@pytest.mark.parametrize(
    ("current", "total", "target", "tolerance", "expected"),
    [
        (10, 110, 10, 0.1, 10),  # ratio 1.1 exactly: inside the band, keep current
        (10, 90, 10, 0.1, 10),  # ratio 0.9 exactly: inside the band
        (10, 111, 10, 0.1, 12),  # 1.11: ceil(111 / 10)
        (10, 89, 10, 0.1, 9),  # 0.89: ceil(8.9)
        (5, 51, 10, 0.1, 5),  # 1.02: noise, keep
        (4, 45, 10, 0.1, 5),  # 1.125: ceil(4.5)
        (1, 120, 10, 0.1, 12),
        (3, 0, 10, 0.1, 0),  # no lag proposes zero; the clamps raise it later
        (0, 5, 10, 0.1, 1),  # zero replicas are never inside the band
        (0, 0, 10, 0.1, 0),
        (10, 101, 10, 0.0, 11),  # tolerance 0: any deviation scales
    ],
    ids=[
        "ratio-1.1-keeps",
        "ratio-0.9-keeps",
        "ratio-1.11-scales-up",
        "ratio-0.89-scales-down",
        "ratio-1.02-keeps",
        "ceil-4.5",
        "from-one",
        "zero-lag",
        "zero-replicas-some-lag",
        "zero-replicas-no-lag",
        "zero-tolerance",
    ],
)
def test_average_value_proposal(current, total, target, tolerance, expected):
    assert average_value_proposal(current, total, target, tolerance) == expected


@pytest.mark.parametrize(
    ("hpa", "calls", "expected"),
    [
        # 1 -> max(1 + 4, 2 x 1) = 5; the next period starts from 5: max(9, 10) = 10; then the metric's 12.
        (Hpa(1, 100, HpaBehavior()), [(0, 1, 120), (15, 5, 120), (30, 10, 120)], [5, 10, 12]),
        # Within one 15 s period the +4 already spent counts: held at 5 until the event at t=0 ages out.
        (Hpa(1, 100, HpaBehavior()), [(0, 1, 120), (5, 5, 120), (14.9, 5, 120), (15, 5, 120)], [5, 5, 5, 10]),
        # From 10 the Percent policy (x2) is the more permissive one.
        (Hpa(1, 100, HpaBehavior()), [(0, 10, 1000)], [20]),
        # select Min picks the least permissive: from 1, min(1 + 4, 2) = 2.
        (
            Hpa(1, 100, HpaBehavior(scale_up=ScalingRules(0, "Min", HpaBehavior().scale_up.policies))),
            [(0, 1, 120), (15, 2, 120)],
            [2, 4],
        ),
        (Hpa(1, 100, HpaBehavior(scale_up=ScalingRules(0, "Disabled", ()))), [(0, 1, 120)], [1]),
        (Hpa(1, 8, HpaBehavior()), [(0, 6, 1000)], [8]),  # maxReplicas caps the rate limit's 12
        # A scale-down earlier in the period raises the period's start: recovering 1 -> 10 is allowed at once.
        (
            Hpa(
                1,
                100,
                HpaBehavior(
                    scale_up=ScalingRules(0, "Max", (ScalingPolicy("Pods", 4, 15),)), scale_down=NO_DOWN_WINDOW
                ),
            ),
            [(0, 10, 0), (5, 1, 100)],
            [1, 10],
        ),
    ],
    ids=[
        "1-5-10-12",
        "one-period-holds",
        "percent-wins",
        "select-min",
        "disabled",
        "max-replicas",
        "recover-in-period",
    ],
)
def test_scale_up_rate_limits(hpa, calls, expected):
    assert run(hpa, calls) == expected


@pytest.mark.parametrize(
    ("hpa", "calls", "expected"),
    [
        # Lag vanishes at t=15; the t=0 recommendation of 10 holds until it leaves the 300 s window (strictly).
        (
            Hpa(1, 100, HpaBehavior()),
            [(0, 10, 100), (15, 10, 0), (150, 10, 0), (299.9, 10, 0), (300, 10, 0)],
            [10, 10, 10, 10, 1],
        ),
        # Partial drop: held, then down to the metric's 5 (Percent 100 allows any drop).
        (Hpa(1, 100, HpaBehavior()), [(0, 10, 100), (15, 10, 50), (300, 10, 50)], [10, 10, 5]),
        # The very first sync remembers the current size, so even a fresh HPA does not drop at once.
        (Hpa(1, 100, HpaBehavior()), [(0, 10, 0), (299, 10, 0), (300, 10, 0)], [10, 10, 1]),
        # No window, Pods 1 per 60 s: one replica per minute.
        (
            Hpa(1, 100, HpaBehavior(scale_down=ScalingRules(0, "Max", (ScalingPolicy("Pods", 1, 60),)))),
            [(0, 10, 0), (30, 9, 0), (60, 9, 0), (120, 8, 0)],
            [9, 9, 8, 7],
        ),
        # Percent down truncates: int(5 x 0.5) = 2, not ceil's 3.
        (
            Hpa(1, 100, HpaBehavior(scale_down=ScalingRules(0, "Max", (ScalingPolicy("Percent", 50, 15),)))),
            [(0, 5, 0)],
            [2],
        ),
        # select Min for scale-down keeps the larger count: max(10 - 1, int(10 x 0.5)) = 9.
        (
            Hpa(
                1,
                100,
                HpaBehavior(
                    scale_down=ScalingRules(0, "Min", (ScalingPolicy("Pods", 1, 15), ScalingPolicy("Percent", 50, 15)))
                ),
            ),
            [(0, 10, 0)],
            [9],
        ),
        (Hpa(1, 100, HpaBehavior(scale_down=ScalingRules(0, "Disabled", ()))), [(0, 10, 0)], [10]),
        (Hpa(3, 100, HpaBehavior(scale_down=NO_DOWN_WINDOW)), [(0, 10, 0)], [3]),
    ],
    ids=[
        "held-300s",
        "partial-drop",
        "initial-recommendation",
        "pods-per-minute",
        "percent-truncates",
        "select-min",
        "disabled",
        "min-replicas",
    ],
)
def test_scale_down_stabilisation_and_rate_limits(hpa, calls, expected):
    assert run(hpa, calls) == expected


def test_scale_up_window_uses_the_lowest_recent_recommendation():
    hpa = Hpa(1, 100, HpaBehavior(scale_up=ScalingRules(60, "Max", (ScalingPolicy("Pods", 100, 15),))))
    # 2 recommended at t=0 caps the rise until that sample is more than 60 s old.
    assert run(hpa, [(0, 2, 20), (15, 2, 100), (59, 2, 100), (60, 2, 100)]) == [2, 2, 2, 10]


@pytest.mark.parametrize(
    ("hpa", "calls", "expected"),
    [
        (Hpa(1, 100), [(0, 1, 120), (15, 4, 120), (30, 8, 120)], [4, 8, 12]),  # max(2 x current, 4) per sync
        (Hpa(1, 100), [(0, 1, 120), (1, 4, 120)], [4, 8]),  # no memory of earlier scale events
        (Hpa(1, 100), [(0, 10, 100), (15, 10, 0), (300, 10, 0), (300.5, 10, 0)], [10, 10, 10, 1]),  # window inclusive
        (Hpa(1, 100), [(0, 5, 50), (15, 5, 80), (30, 8, 50)], [5, 8, 8]),  # up is immediate, down stabilised
    ],
    ids=["doubling", "per-call", "inclusive-window", "up-then-hold"],
)
def test_without_behavior_the_legacy_path(hpa, calls, expected):
    assert run(hpa, calls) == expected


@pytest.mark.parametrize(
    ("hpa", "current", "total", "expected"),
    [
        (Hpa(1, 10, HpaBehavior()), 0, 500, 0),  # a target at zero is left alone ("ScalingDisabled")
        (Hpa(1, 5, HpaBehavior()), 8, 0, 5),  # above max: straight to max, no metric
        (Hpa(3, 10, HpaBehavior()), 1, 0, 3),  # below min: straight to min
        (Hpa(0, 10, HpaBehavior()), 0, 25, 3),  # minReplicas 0 (HPAScaleToZero) scales from zero itself
        (Hpa(1, 10, HpaBehavior(scale_down=NO_DOWN_WINDOW)), 4, -30, 1),  # negative lag proposes 0; min holds
    ],
    ids=["at-zero", "above-max", "below-min", "min-zero", "negative-metric"],
)
def test_bounds(hpa, current, total, expected):
    assert hpa.desired(0, current, total, 10) == expected


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Hpa(-1, 5), "minReplicas"),
        (lambda: Hpa(3, 2), "maxReplicas"),
        (lambda: Hpa(0, 0), "maxReplicas"),
        (lambda: Hpa(1, 5).desired(0, 1, 10, 0), "target average"),
        (lambda: Hpa(1, 5).desired(0, -1, 10, 10), "current replicas"),
        (lambda: ScalingPolicy("Pods", 0, 15), "value"),
        (lambda: ScalingPolicy("Pods", 4, 0), "period"),
        (lambda: ScalingPolicy("Bogus", 4, 15), "Pods or Percent"),  # type: ignore[arg-type]
        (lambda: ScalingRules(-1, "Max", ()), "stabilization"),
        (lambda: ScalingRules(0, "Biggest", ()), "selectPolicy"),  # type: ignore[arg-type]
        (lambda: HpaBehavior(tolerance=1.5), "tolerance"),
    ],
    ids=[
        "negative-min",
        "max-below-min",
        "max-zero",
        "zero-target",
        "negative-current",
        "zero-value",
        "zero-period",
        "bad-kind",
        "negative-window",
        "bad-select",
        "bad-tolerance",
    ],
)
def test_invalid_configuration_is_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()
