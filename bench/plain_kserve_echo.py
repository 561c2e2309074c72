"""Baseline for the overhead comparison: the echo model on plain ``kserve.ModelServer``, nothing of ours.

    python -m bench.plain_kserve_echo HTTP_PORT GRPC_PORT [--quiet]

``--quiet`` turns off KServe's per-request latency log line. Plain KServe binds 0.0.0.0 (it cannot be told
otherwise); the benchmark only ever connects to 127.0.0.1.
"""

from __future__ import annotations

import sys

http_port, grpc_port = int(sys.argv[1]), int(sys.argv[2])
quiet = "--quiet" in sys.argv
sys.argv = sys.argv[:1]  # kserve parses sys.argv on import

from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer  # noqa: E402


class PlainEcho(Model):  # type: ignore[misc]
    """Returns input ``x`` as output ``y``, as wakeserve's echo function does."""

    def __init__(self) -> None:
        super().__init__("echo")
        self.ready = True

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        x = payload.inputs[0].as_numpy()
        out = InferOutput(name="y", shape=list(x.shape), datatype="FP32", data=x)
        return InferResponse(response_id=payload.id or "1", model_name=self.name, infer_outputs=[out])


if __name__ == "__main__":
    ModelServer(http_port=http_port, grpc_port=grpc_port, enable_latency_logging=not quiet).start([PlainEcho()])
