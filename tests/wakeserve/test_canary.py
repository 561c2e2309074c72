"""Canary analysis and rollout steps (pure), and the validation of rollout requests."""

from __future__ import annotations

import pytest

from core.errors import InvalidInputError
from wakeserve.canary import Action, Basis, CanaryPolicy, Evidence, Window, decide, judge, probe_rounds
from wakeserve.rollout import RolloutRequest
from wakeserve.rollout_command import summary

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


def probes(stable: Window, candidate: Window) -> Evidence:
    return Evidence(stable, candidate)


@pytest.mark.parametrize(
    ("held_s", "user", "synthetic", "action", "basis", "says"),
    [
        (31, window(0), probes(window(20), window(20)), Action.ADVANCE, Basis.SYNTHETIC, "on 20 synthetic probes"),
        (31, window(20), probes(window(20), window(20)), Action.ADVANCE, Basis.USER, "healthy at 1% for 31s"),
        (31, window(3), probes(window(12), window(12)), Action.HOLD, None, "17 more candidate requests (12/20"),
        (5, window(0), probes(window(20), window(20)), Action.HOLD, None, "holding 1%"),
        (5, window(0), probes(window(20), window(20, errors=5)), Action.ROLLBACK, Basis.SYNTHETIC, "synthetic probes"),
        # Probes judge latency on the median: one slow call among twenty is noise, half of them is not.
        (31, window(0), probes(window(20), window(20, slow=1, slow_ms=500)), Action.ADVANCE, Basis.SYNTHETIC, ""),
        (
            31,
            window(0),
            probes(window(20), window(20, slow=11, slow_ms=50)),
            Action.ROLLBACK,
            Basis.SYNTHETIC,
            "median latency 50.0 ms",
        ),
        # User evidence is judged first and on its own.
        (31, window(20, errors=10), probes(window(20), window(20)), Action.ROLLBACK, Basis.USER, "error rate 50.00%"),
    ],
)
def test_decide_with_synthetic_evidence(held_s, user, synthetic, action, basis, says):
    verdict = decide(POLICY, 0, 1000.0, 1000.0 + held_s, window(1000), user, synthetic)
    assert verdict.action is action and verdict.basis is basis and says in verdict.reason


@pytest.mark.parametrize(
    ("held_s", "user", "synthetic", "rounds"),
    [
        (9.9, 0, 0, 0),  # the step has not waited long enough for user requests
        (10, 0, 0, 5),
        (10, 19, 0, 5),
        (10, 20, 0, 0),  # enough user requests: no probes
        (10, 0, 17, 3),  # only what is missing
        (10, 0, 20, 0),
        (10, 0, 25, 0),
    ],
)
def test_probe_rounds(held_s, user, synthetic, rounds):
    assert probe_rounds(CanaryPolicy(), 100.0, 100.0 + held_s, window(user), window(synthetic)) == rounds


@pytest.mark.parametrize(
    ("metrics", "printed", "absent"),
    [
        ({"requests": 0, "errors": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None}, "p50 -  p95 -  p99 -", "None"),
        ({"requests": 3, "errors": 0, "p50_ms": 1.5, "p95_ms": 2.0, "p99_ms": 12.25}, "p50 1.5 ms", "None"),
    ],
)
def test_progress_lines_print_durations_as_numbers_or_a_dash(metrics, printed, absent):
    state = {
        "function": "classifier",
        "stable": "v1",
        "rollout": {
            "candidate": "v1b",
            "phase": "canary",
            "percent": 1.0,
            "step": 0,
            "steps": [1, 5, 25, 100],
            "reason": "waiting for 20 more candidate requests",
            "basis": None,
            "step_metrics": {"v1": metrics, "v1b": metrics},
            "synthetic_step_metrics": {"v1b": {**metrics, "requests": 4}},
        },
    }
    text = summary(state)
    assert printed in text and absent not in text
    assert "v1b                      synthetic requests      4" in text
    assert "canary at 1% (step 1/4) waiting for 20 more candidate requests" in text
