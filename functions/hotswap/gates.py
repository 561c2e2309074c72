"""The gates a standby model passes before it may take traffic, as pure verdicts over measured values.

A candidate version is loaded beside the active one and then judged on: its declared contract (inputs and
outputs equal to the active version's, unless a new contract is declared), golden inputs shipped with the
function (outputs within a stated tolerance), latency (median of interleaved runs within ``factor`` times the
active version's, plus a small absolute slack so that microsecond models are not judged on timer noise) and
memory (the replica's resident set with both versions loaded within a budget).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from functions.contract import Tensors, TensorSpec

SKIPPABLE = frozenset({"contract", "golden", "latency", "memory"})
DEFAULT_MEMORY_BUDGET_MB = 4096.0  # a replica with two versions of the largest packaged model stays well below


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    detail: str
    skipped: bool = False

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class GatePolicy:
    """Thresholds of the latency and memory gates; see ``PredictorSettings`` for their settings."""

    latency_factor: float = 1.5
    latency_slack_s: float = 0.002
    latency_runs: int = 15
    memory_budget_mb: float | None = DEFAULT_MEMORY_BUDGET_MB


@dataclass(frozen=True)
class GoldenCase:
    inputs: Tensors
    outputs: Tensors


@dataclass(frozen=True)
class Golden:
    """Inputs with expected outputs; numbers compare with ``|a - e| <= atol + rtol * |e|``, BYTES exactly."""

    cases: tuple[GoldenCase, ...]
    atol: float = 0.0
    rtol: float = 0.0


def skipped(name: str, why: str) -> GateResult:
    return GateResult(name, True, why, skipped=True)


def contract_gate(active: Sequence[TensorSpec], candidate: Sequence[TensorSpec], what: str) -> GateResult:
    if tuple(active) == tuple(candidate):
        return GateResult("contract", True, f"{what} unchanged")
    before = ", ".join(s.describe() for s in active)
    after = ", ".join(s.describe() for s in candidate)
    return GateResult("contract", False, f"{what} changed from [{before}] to [{after}]; declare a new contract")


def compare_outputs(expected: Tensors, actual: Tensors, atol: float, rtol: float) -> str | None:
    """None when ``actual`` matches ``expected``; otherwise what differs first."""
    for name, want in expected.items():
        if name not in actual:
            return f"output {name!r} is missing"
        got = np.asarray(actual[name])
        if got.shape != want.shape:
            return f"output {name!r} has shape {list(got.shape)}, expected {list(want.shape)}"
        if want.dtype == object:
            same = [bytes(a) == bytes(b) for a, b in zip(got.reshape(-1), want.reshape(-1))]
            if not all(same):
                i = same.index(False)
                return f"output {name!r}[{i}] is {got.reshape(-1)[i]!r}, expected {want.reshape(-1)[i]!r}"
            continue
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        allowed = atol + rtol * np.abs(want.astype(np.float64))
        if not np.all(diff <= allowed):
            return f"output {name!r} differs by up to {float(np.max(diff)):.3g} (atol {atol}, rtol {rtol})"
    return None


def golden_gate(golden: Golden | None, outputs: Sequence[Tensors]) -> GateResult:
    if golden is None:
        return skipped("golden", "the function ships no golden inputs")
    for i, (case, actual) in enumerate(zip(golden.cases, outputs)):
        problem = compare_outputs(case.outputs, actual, golden.atol, golden.rtol)
        if problem is not None:
            return GateResult("golden", False, f"case {i}: {problem}")
    return GateResult("golden", True, f"{len(golden.cases)} cases within atol {golden.atol}, rtol {golden.rtol}")


def latency_gate(active_s: Sequence[float], candidate_s: Sequence[float], policy: GatePolicy) -> GateResult:
    if not active_s or not candidate_s:
        return GateResult("latency", False, "no latency samples")
    a, c = float(np.median(active_s)), float(np.median(candidate_s))
    limit = policy.latency_factor * a + policy.latency_slack_s
    detail = f"median {c * 1000:.2f} ms vs active {a * 1000:.2f} ms (limit {limit * 1000:.2f} ms)"
    return GateResult("latency", c <= limit, detail)


def memory_gate(rss_mb: float, added_mb: float, policy: GatePolicy) -> GateResult:
    detail = f"replica {rss_mb:.0f} MiB with both versions; the candidate added {added_mb:.0f} MiB"
    if policy.memory_budget_mb is None:
        return GateResult("memory", True, detail + "; no budget set")
    passed = rss_mb <= policy.memory_budget_mb
    return GateResult("memory", passed, f"{detail}; budget {policy.memory_budget_mb:.0f} MiB")


def _tensor(doc: dict[str, object]) -> np.ndarray:
    datatype, shape, data = str(doc["datatype"]), list(doc["shape"]), doc["data"]  # type: ignore[call-overload]
    if datatype == "BYTES":
        items = [str(x).encode() for x in data]  # type: ignore[attr-defined]
        return np.array(items, dtype=object).reshape(shape)
    dtypes = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
    return np.asarray(data, dtype=dtypes[datatype]).reshape(shape)


def load_golden(path: Path) -> Golden | None:
    """``golden.json`` beside a function: ``{"atol", "rtol", "cases": [{"inputs": {...}, "outputs": {...}}]}``
    with tensors as ``{"datatype", "shape", "data"}``. None when the file does not exist."""
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    cases = tuple(
        GoldenCase(
            inputs={k: _tensor(v) for k, v in case["inputs"].items()},
            outputs={k: _tensor(v) for k, v in case["outputs"].items()},
        )
        for case in doc["cases"]
    )
    return Golden(cases, atol=float(doc.get("atol", 0.0)), rtol=float(doc.get("rtol", 0.0)))


def dump_tensor(array: np.ndarray, datatype: str) -> dict[str, object]:
    if datatype == "BYTES":
        data: list[object] = [bytes(x).decode() for x in array.reshape(-1)]
    else:
        data = [float(x) if datatype.startswith("FP") else int(x) for x in array.reshape(-1)]
    return {"datatype": datatype, "shape": list(array.shape), "data": data}
