"""Text in, mean-pooled L2-normalised embeddings out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from functions.contract import BatchingDefaults, Function, Tensors, TensorSpec
from functions.text.inputs import decode_texts

if TYPE_CHECKING:
    from functions.text.encoder import SentenceEncoder


class Embedder(Function):
    """BYTES ``text`` [N] → FP32 ``embedding`` [N, dim]."""

    name = "embedder"
    inputs = (TensorSpec("text", "BYTES", (-1,)),)
    outputs = (TensorSpec("embedding", "FP32", (-1, 384)),)
    batching = BatchingDefaults(max_batch_size=32, max_delay_ms=0.0, max_queue=512)

    def __init__(self) -> None:
        self.encoder: SentenceEncoder | None = None

    def load(self, artifacts: Path | None) -> None:
        from functions.text.checkpoint import check_checkpoint
        from functions.text.encoder import SentenceEncoder, default_checkpoint

        checkpoint = artifacts or default_checkpoint()
        if artifacts is not None:
            check_checkpoint(artifacts)  # before transformers allocates what config.json claims
        self.encoder = SentenceEncoder(checkpoint)
        self.outputs = (TensorSpec("embedding", "FP32", (-1, self.encoder.dim)),)
        self.version = checkpoint.name if artifacts else "all-MiniLM-L6-v2"

    def check(self, inputs: Tensors) -> None:
        decode_texts(inputs["text"])

    def infer(self, inputs: Tensors) -> Tensors:
        assert self.encoder is not None, "infer before load"
        return {"embedding": self.encoder.encode(decode_texts(inputs["text"]))}

    def warmup_inputs(self) -> Tensors:
        return {"text": np.array([b"warm up", b"a second, somewhat longer warm-up sentence"], dtype=object)}
