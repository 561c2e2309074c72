"""Gate verdicts (pure) and the golden files shipped with every function."""

from __future__ import annotations

import numpy as np
import pytest

from functions import catalog
from functions.contract import TensorSpec
from functions.hotswap.gates import (
    GatePolicy,
    Golden,
    GoldenCase,
    compare_outputs,
    contract_gate,
    golden_gate,
    latency_gate,
    load_golden,
    memory_gate,
)
from functions.hotswap.watch import package_dir

X = TensorSpec("x", "FP32", (-1, -1))
Y = TensorSpec("y", "FP32", (-1, -1))
F = np.float32


@pytest.mark.parametrize(
    ("active", "candidate", "passed", "says"),
    [
        ((X,), (X,), True, "unchanged"),
        ((X,), (TensorSpec("x", "FP64", (-1, -1)),), False, "x FP64"),
        ((X,), (TensorSpec("x", "FP32", (-1, 3)),), False, "declare a new contract"),
        ((X,), (X, Y), False, "changed"),
        ((X, Y), (Y, X), False, "changed"),
    ],
)
def test_contract_gate(active, candidate, passed, says):
    result = contract_gate(active, candidate, "inputs")
    assert (result.passed, result.name) == (passed, "contract")
    assert says in result.detail


@pytest.mark.parametrize(
    ("expected", "actual", "atol", "rtol", "problem"),
    [
        ({"y": np.array([1, 2], F)}, {"y": np.array([1, 2], F)}, 0, 0, None),
        ({"y": np.array([1, 2], F)}, {"y": np.array([1, 2.001], F)}, 0.01, 0, None),
        ({"y": np.array([100], F)}, {"y": np.array([100.5], F)}, 0, 0.01, None),
        ({"y": np.array([1, 2], F)}, {"y": np.array([1, 2.1], F)}, 0.01, 0, "differs by up to 0.1"),
        ({"y": np.array([1, 2], F)}, {"y": np.array([1, 2, 3], F)}, 0, 0, "shape [3], expected [2]"),
        ({"y": np.array([1], F)}, {"z": np.array([1], F)}, 0, 0, "'y' is missing"),
        ({"l": np.array([b"a", b"b"], object)}, {"l": np.array([b"a", b"b"], object)}, 0, 0, None),
        ({"l": np.array([b"a", b"b"], object)}, {"l": np.array([b"a", b"c"], object)}, 1, 1, "'l'[1] is b'c'"),
    ],
)
def test_compare_outputs(expected, actual, atol, rtol, problem):
    found = compare_outputs(expected, actual, atol, rtol)
    assert found == problem if problem is None else problem in (found or "")


def test_golden_gate_reports_the_first_failing_case():
    golden = Golden(
        (
            GoldenCase({"x": np.ones((1, 2), F)}, {"y": np.ones((1, 2), F)}),
            GoldenCase({"x": np.ones((1, 2), F)}, {"y": np.zeros((1, 2), F)}),
        )
    )
    ok = golden_gate(golden, [{"y": np.ones((1, 2), F)}, {"y": np.zeros((1, 2), F)}])
    bad = golden_gate(golden, [{"y": np.ones((1, 2), F)}, {"y": np.ones((1, 2), F)}])
    missing = golden_gate(None, [])
    assert ok.passed and "2 cases" in ok.detail
    assert not bad.passed and bad.detail.startswith("case 1:")
    assert missing.passed and missing.skipped


@pytest.mark.parametrize(
    ("active_ms", "candidate_ms", "factor", "passed"),
    [
        ([10, 10, 10], [14, 15, 14], 1.5, True),  # 14 <= 15 + 2
        ([10, 10, 10], [18, 18, 18], 1.5, False),
        ([10, 10, 100], [15, 16, 16], 1.5, True),  # medians, not means
        ([0.01, 0.01], [1.5, 1.5], 1.5, True),  # the 2 ms slack absorbs timer noise of tiny models
        ([0.01, 0.01], [3, 3], 1.5, False),
        ([10], [25], 3.0, True),
        ([], [1], 1.5, False),
    ],
)
def test_latency_gate(active_ms, candidate_ms, factor, passed):
    policy = GatePolicy(latency_factor=factor)
    result = latency_gate([a / 1000 for a in active_ms], [c / 1000 for c in candidate_ms], policy)
    assert result.passed is passed


@pytest.mark.parametrize(
    ("rss", "added", "budget", "passed", "says"),
    [(900, 100, None, True, "no budget"), (900, 100, 1000, True, "budget 1000"), (1100, 300, 1000, False, "1100")],
)
def test_memory_gate(rss, added, budget, passed, says):
    result = memory_gate(rss, added, GatePolicy(memory_budget_mb=budget))
    assert result.passed is passed and says in result.detail


@pytest.mark.parametrize("name", sorted(catalog.FUNCTIONS))
def test_every_function_ships_golden_inputs_that_match_its_declared_inputs(name):
    golden = load_golden(package_dir(name) / "golden.json")
    assert golden is not None and golden.cases
    function = catalog.create(name)
    for case in golden.cases:
        assert set(case.inputs) == {s.name for s in function.inputs}
        assert set(case.outputs) == {s.name for s in function.outputs}


def test_the_packaged_echo_reproduces_its_golden_outputs_and_a_scaled_one_does_not(tmp_path):
    golden = load_golden(package_dir("echo") / "golden.json")
    assert golden is not None
    echo = catalog.create("echo")
    echo.load(None)
    assert golden_gate(golden, [echo.infer(c.inputs) for c in golden.cases]).passed
    (tmp_path / "config.json").write_text('{"scale": 2}')
    wrong = catalog.create("echo")
    wrong.load(tmp_path)
    assert not golden_gate(golden, [wrong.infer(c.inputs) for c in golden.cases]).passed
