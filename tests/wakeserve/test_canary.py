"""Canary analysis and rollout steps (pure), and the validation of rollout requests."""

from __future__ import annotations

import pytest

from core.errors import InvalidInputError
from wakeserve.canary import Action, CanaryPolicy, Window, decide, judge
from wakeserve.rollout import RolloutRequest

POLICY = CanaryPolicy(steps=(1, 5, 25, 100), hold_s=30, min_requests=20)


def window(requests: int, errors: int = 0, latency_ms: float = 10.0, slow: int = 0, slow_ms: float = 0.0) -> Window:
    w = Window()
    for i in range(requests):
        w.add((slow_ms if i < slow else latency_ms) / 1000, ok=i >= errors)
    return w


@pytest.mark.parametrize(
    ("stable", "candidate", "problem"),
    [
        (window(1000), window(19, errors=19), None),  # too few candidate requests to judge
        (window(1000), window(100), None),
        (window(1000, errors=10), window(100, errors=1), None),  # 1 % vs 1 %: not worse
        (window(1000, errors=10), window(100, errors=2), "error rate 2.00%"),  # 2 % > 1.5 x 1 % and > 0.1 %
        (window(1000), window(1000, errors=1), None),  # 0.1 % is not above the 0.1 % floor
        (window(1000), window(1000, errors=2), "over 1.5x the stable 0.00%"),
        (window(1000, errors=100), window(100, errors=14), None),  # 14 % < 1.5 x 10 %
        (window(1000, errors=100), window(100, errors=16), "error rate 16.00%"),
        (window(1000), window(100, slow=5, slow_ms=100), "p99 latency"),
        (window(1000, slow=50, slow_ms=100), window(100, slow=5, slow_ms=100), None),  # both slow alike
        (window(1000, latency_ms=0.1), window(100, latency_ms=0.3), None),  # 3x, but within the 5 ms slack
        (window(10), window(100, slow=5, slow_ms=100), None),  # too few stable requests to compare latency
    ],
)
def test_judge(stable, candidate, problem):
    found = judge(stable, candidate, POLICY)
    assert found == problem if problem is None else problem in (found or "")


@pytest.mark.parametrize(
    ("step", "held_s", "candidate", "action", "says"),
    [
        (0, 5, window(100), Action.HOLD, "holding 1% for 25s"),
        (0, 30, window(5), Action.HOLD, "15 more candidate requests"),
        (0, 30, window(20), Action.ADVANCE, "healthy at 1%"),
        (2, 31, window(50), Action.ADVANCE, "healthy at 25%"),
        (3, 30, window(50), Action.PROMOTE, "healthy at 100%"),
        (3, 1, window(50, errors=10), Action.ROLLBACK, "error rate"),  # a rollback does not wait for the hold
        (0, 100, window(50, errors=10), Action.ROLLBACK, "error rate"),
    ],
)
def test_decide(step, held_s, candidate, action, says):
    verdict = decide(POLICY, step, 1000.0, 1000.0 + held_s, window(1000), candidate)
    assert verdict.action is action and says in verdict.reason


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"steps": ()}, "steps"),
        ({"steps": (5, 1, 100)}, "increasing"),
        ({"steps": (0, 100)}, "(0, 100]"),
        ({"steps": (10, 50)}, "last step must be 100"),
        ({"hold_s": -1}, "hold_s"),
        ({"min_requests": 0}, "min_requests"),
        ({"error_ratio": 0.5}, "error_ratio"),
    ],
)
def test_policy_validation(fields, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace("]", r"\]")):
        CanaryPolicy(**fields)


def test_window_summary_in_milliseconds():
    w = window(100, errors=3, latency_ms=10, slow=1, slow_ms=200)
    s = w.summary()
    assert (s["requests"], s["errors"], s["error_rate"]) == (100, 3, 0.03)
    assert s["p50_ms"] == pytest.approx(10) and s["p99_ms"] > 10
    assert Window().summary()["p99_ms"] is None


def test_window_keeps_a_bounded_sample():
    w = Window(max_samples=100)
    for i in range(10_000):
        w.add(i / 10_000, ok=True)
    assert w.requests == 10_000 and len(w.latencies) == 100
    assert 0.3 < (w.quantile(0.5) or 0) < 0.7  # a sample of the whole step, not its first 100 requests


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "JSON object"),
        ({}, "'version'"),
        ({"version": ""}, "'version'"),
        ({"version": "v2", "model_uri": 3}, "model_uri"),
        ({"version": "v2", "steps": [50, 100], "hold_s": "soon"}, "invalid rollout policy"),
        ({"version": "v2", "steps": ["a"]}, "invalid rollout policy"),
        ({"version": "v2", "skip_gates": "golden"}, "skip_gates"),
        ({"version": "v2", "percent": 5}, "unknown field"),
    ],
)
def test_rollout_request_validation(body, problem):
    with pytest.raises(InvalidInputError, match=problem):
        RolloutRequest.from_json(body)


def test_rollout_request_defaults_and_overrides():
    default = RolloutRequest.from_json({"version": "v2", "model_uri": "s3://m/echo/v2"})
    assert default.policy == CanaryPolicy() and default.policy.steps == (1, 5, 25, 100)
    custom = RolloutRequest.from_json({"version": "v2", "steps": [10, 100], "hold_s": 2, "skip_gates": ["latency"]})
    assert custom.policy.steps == (10.0, 100.0) and custom.policy.hold_s == 2 and custom.skip_gates == ("latency",)
