"""The steps of docs/functions.md, taken with a function from a package outside ``functions/``.

``tests.support.tinyfunction`` is registered with ``WAKESERVE_FUNCTIONS``, its golden file is recorded and
judged by the golden gate, and ``wakeserve serve tiny`` answers v2 calls with its values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from core.errors import InvalidInputError
from functions.catalog import ENV_VAR
from functions.contract import Function, Tensors
from functions.hotswap.gates import dump_tensor, golden_gate, load_golden
from tests.support.replicas import start_replica
from tests.support.tinyfunction import Tiny

REPO = Path(__file__).resolve().parents[2]
# PYTHONPATH: the child imports the test package whatever its working directory.
ENV = {ENV_VAR: "tiny=tests.support.tinyfunction:Tiny", "PYTHONPATH": str(REPO)}


def loaded(factor: float | None = None, tmp: Path | None = None) -> Tiny:
    tiny = Tiny()
    if factor is None or tmp is None:
        tiny.load(None)
    else:
        (tmp / "config.json").write_text(json.dumps({"factor": factor, "version": "v2"}))
        tiny.load(tmp)
    return tiny


def outputs_on(function: Function, cases: list[Tensors]) -> list[Tensors]:
    return [function.infer(inputs) for inputs in cases]


def test_the_contract_is_kept() -> None:
    tiny = loaded()
    batch = tiny.warmup_inputs()
    assert set(batch) == {s.name for s in tiny.inputs}
    out = tiny.infer({"x": np.array([[1.0, -2.0], [0.25, 4.0]], dtype=np.float32)})
    assert set(out) == {s.name for s in tiny.outputs}
    np.testing.assert_array_equal(out["y"], np.array([[2.0, -4.0], [0.5, 8.0]], dtype=np.float32))
    assert out["y"].dtype == np.float32
    with pytest.raises(InvalidInputError, match="every value must be finite"):
        tiny.check({"x": np.array([[np.nan, 1.0]], dtype=np.float32)})


def test_the_golden_gate_takes_the_functions_golden_inputs(tmp_path: Path) -> None:
    tiny = loaded()
    specs = {s.name: s.datatype for s in (*tiny.inputs, *tiny.outputs)}
    cases = [
        {
            "inputs": {k: dump_tensor(v, specs[k]) for k, v in inputs.items()},
            "outputs": {k: dump_tensor(v, specs[k]) for k, v in tiny.infer(inputs).items()},
        }
        for inputs in tiny.golden_inputs()
    ]
    path = tmp_path / "golden.json"
    tolerance = tiny.golden_tolerance
    path.write_text(json.dumps({"atol": tolerance.atol, "rtol": tolerance.rtol, "cases": cases}))
    golden = load_golden(path)
    assert golden is not None and golden.atol == 1e-6
    inputs = [case.inputs for case in golden.cases]
    assert golden_gate(golden, outputs_on(Tiny(), inputs)).passed
    wrong = golden_gate(golden, outputs_on(loaded(3.0, tmp_path), inputs))
    assert not wrong.passed and wrong.detail.startswith("case 0:")


def test_the_golden_command_records_a_registered_function(tmp_path: Path) -> None:
    path = tmp_path / "golden.json"
    done = subprocess.run(
        [sys.executable, "-m", "functions.hotswap.golden", "tiny", "--output", str(path)],
        env={**os.environ, **ENV},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    golden = load_golden(path)
    assert golden is not None and len(golden.cases) == len(Tiny().golden_inputs())
    inputs = [case.inputs for case in golden.cases]
    assert golden_gate(golden, outputs_on(loaded(), inputs)).passed
    assert not golden_gate(golden, outputs_on(loaded(3.0, tmp_path), inputs)).passed


@pytest.mark.integration
def test_wakeserve_serve_answers_for_a_registered_function(tmp_path: Path) -> None:
    replica = start_replica("tiny", tmp_path, env=ENV, timeout=90)
    try:
        meta = httpx.get(f"{replica.url}/v2/models/tiny", timeout=10).json()
        assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, -1]}]
        assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, -1]}]
        request = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1.0, -2.0, 0.25, 4.0]}]}
        response = httpx.post(f"{replica.url}/v2/models/tiny/infer", json=request, timeout=30)
        assert response.status_code == 200, response.text
        [y] = response.json()["outputs"]
        assert (y["name"], y["datatype"], y["shape"]) == ("y", "FP32", [2, 2])
        assert y["data"] == [2.0, -4.0, 0.5, 8.0]
    finally:
        replica.process.stop()
