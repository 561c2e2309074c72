"""Returns its input, costing nothing, so it measures the serving path itself.

Its optional artifact (a directory with ``config.json``) makes versions of it for lifecycle tests and
benchmarks: ``{"version": "v2", "scale": 1.0, "delay_ms": 0, "error_rate": 0.0, "healthy_calls": 0,
"ballast_mb": 0}``. ``scale`` multiplies the output (a wrong model), ``delay_ms`` and ``error_rate`` apply
to every call after the first ``healthy_calls`` (a version that passes its gates, then degrades under
traffic), ``ballast_mb`` holds that much memory while loaded. Values out of range are refused before
anything is allocated.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from pathlib import Path

import numpy as np

from core.errors import ArtifactError
from functions.contract import BatchingDefaults, Function, Tensors, TensorSpec

MAX_BALLAST_MB = 1024.0
MAX_DELAY_MS = 60_000.0


def _number(config: dict[str, object], key: str, default: float, low: float, high: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ArtifactError(f"config.json: {key} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ArtifactError(f"config.json: {key} must be within {low:g}..{high:g}, got {value!r}")
    return float(value)


class Echo(Function):
    """FP32 ``x`` [N, D] → FP32 ``y`` [N, D]."""

    name = "echo"
    inputs = (TensorSpec("x", "FP32", (-1, -1)),)
    outputs = (TensorSpec("y", "FP32", (-1, -1)),)
    batching = BatchingDefaults(max_batch_size=64, max_delay_ms=0.0, max_queue=1024)
    version = "1"

    def __init__(self) -> None:
        self.scale = 1.0
        self.delay_s = 0.0
        self.error_rate = 0.0
        self.healthy_calls = 0
        self.ballast = b""
        self._calls = 0
        self._lock = threading.Lock()
        self._random = random.Random(0)  # noqa: S311 - fault injection and sampling, not secrets

    def load(self, artifacts: Path | None) -> None:
        config_path = artifacts / "config.json" if artifacts is not None else None
        if config_path is None or not config_path.is_file():
            return
        config = json.loads(config_path.read_text())
        if not isinstance(config, dict):
            raise ArtifactError("config.json must be an object")
        self.version = str(config.get("version", artifacts.name if artifacts else self.version))
        self.scale = _number(config, "scale", 1.0, -1e6, 1e6)
        self.delay_s = _number(config, "delay_ms", 0.0, 0.0, MAX_DELAY_MS) / 1000.0
        self.error_rate = _number(config, "error_rate", 0.0, 0.0, 1.0)
        self.healthy_calls = int(_number(config, "healthy_calls", 0, 0, 1e9))
        self.ballast = bytes(int(_number(config, "ballast_mb", 0.0, 0.0, MAX_BALLAST_MB) * 2**20))

    def infer(self, inputs: Tensors) -> Tensors:
        with self._lock:
            self._calls += 1
            degraded = self._calls > self.healthy_calls
            fail = degraded and self._random.random() < self.error_rate
        if degraded and self.delay_s:
            time.sleep(self.delay_s)
        if fail:
            raise RuntimeError("injected failure (echo error_rate)")
        x = inputs["x"]
        return {"y": x if self.scale == 1.0 else (x * np.float32(self.scale)).astype(np.float32)}

    def warmup_inputs(self) -> Tensors:
        return {"x": np.zeros((1, 4), dtype=np.float32)}

    def golden_inputs(self) -> list[Tensors]:
        # Zeros (the warm-up batch) would pass a version that scales its output; these values would not.
        return [{"x": np.array([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]], dtype=np.float32)}]
