"""``tiny``: FP32 ``x`` [N, D] times a factor → FP32 ``y`` [N, D], small enough to serve in any test.

Its optional artifact is a directory with ``config.json``, ``{"factor": 3.0, "version": "v2"}``: another
version of the same model, which the golden gate must tell apart from the packaged one (factor 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.errors import InvalidInputError
from functions.contract import BatchingDefaults, Function, Tensors, TensorSpec, Tolerance


class Tiny(Function):
    """Multiplies its input by a factor (2 unless the artifact says otherwise)."""

    name = "tiny"
    inputs = (TensorSpec("x", "FP32", (-1, -1)),)
    outputs = (TensorSpec("y", "FP32", (-1, -1)),)
    batching = BatchingDefaults(max_batch_size=8, max_delay_ms=1.0, max_queue=64)
    golden_tolerance = Tolerance(atol=1e-6)

    def __init__(self) -> None:
        self.factor = np.float32(2.0)

    def load(self, artifacts: Path | None) -> None:
        config = artifacts / "config.json" if artifacts is not None else None
        if config is None or not config.is_file():
            return
        doc = json.loads(config.read_text())
        self.factor = np.float32(doc.get("factor", 2.0))
        self.version = str(doc.get("version", self.version))

    def check(self, inputs: Tensors) -> None:
        if not np.isfinite(inputs["x"]).all():
            raise InvalidInputError("input 'x': every value must be finite")

    def infer(self, inputs: Tensors) -> Tensors:
        return {"y": (inputs["x"] * self.factor).astype(np.float32, copy=False)}

    def warmup_inputs(self) -> Tensors:
        return {"x": np.zeros((1, 2), dtype=np.float32)}

    def golden_inputs(self) -> list[Tensors]:
        return [{"x": np.array([[1.0, -2.0], [0.25, 4.0]], dtype=np.float32)}]
