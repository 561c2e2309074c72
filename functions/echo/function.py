"""Returns its input unchanged; costs nothing, so it measures the serving path itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from functions.spec import BatchingDefaults, Function, Tensors, TensorSpec


class Echo(Function):
    """FP32 ``x`` [N, D] → FP32 ``y`` [N, D]."""

    name = "echo"
    inputs = (TensorSpec("x", "FP32", (-1, -1)),)
    outputs = (TensorSpec("y", "FP32", (-1, -1)),)
    batching = BatchingDefaults(max_batch_size=64, max_delay_ms=0.0, max_queue=1024)
    version = "1"

    def load(self, artifacts: Path | None) -> None:
        return None

    def infer(self, inputs: Tensors) -> Tensors:
        return {"y": inputs["x"]}

    def warmup_inputs(self) -> Tensors:
        return {"x": np.zeros((1, 4), dtype=np.float32)}
