"""Text in, label and class probabilities out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from functions.contract import BatchingDefaults, Function, Tensors, TensorSpec
from functions.text.inputs import decode_texts

if TYPE_CHECKING:
    from functions.classifier.head import ClassifierHead
    from functions.text.encoder import SentenceEncoder


class Classifier(Function):
    """BYTES ``text`` [N] → BYTES ``label`` [N] and FP32 ``probabilities`` [N, classes]."""

    name = "classifier"
    inputs = (TensorSpec("text", "BYTES", (-1,)),)
    outputs = (TensorSpec("label", "BYTES", (-1,)), TensorSpec("probabilities", "FP32", (-1, -1)))
    batching = BatchingDefaults(max_batch_size=32, max_delay_ms=0.0, max_queue=512)

    def __init__(self, encoder_checkpoint: Path | None = None) -> None:
        self.encoder_checkpoint = encoder_checkpoint
        self.encoder: SentenceEncoder | None = None
        self.head: ClassifierHead | None = None
        self.labels: np.ndarray = np.array([], dtype=object)

    def load(self, artifacts: Path | None) -> None:
        from functions.classifier.head import load_head, packaged_artifact
        from functions.text.checkpoint import check_checkpoint
        from functions.text.encoder import SentenceEncoder, default_checkpoint

        head = load_head(artifacts or packaged_artifact())
        if self.encoder_checkpoint is not None:
            check_checkpoint(self.encoder_checkpoint)
        encoder = SentenceEncoder(self.encoder_checkpoint or default_checkpoint())
        if encoder.dim != head.config.input_dim:
            raise ValueError(f"head expects {head.config.input_dim}-d embeddings, encoder gives {encoder.dim}")
        self.encoder, self.head = encoder, head
        self.labels = np.array([label.encode() for label in head.config.labels], dtype=object)
        self.outputs = (
            TensorSpec("label", "BYTES", (-1,)),
            TensorSpec("probabilities", "FP32", (-1, len(head.config.labels))),
        )
        self.version = head.config.version

    def check(self, inputs: Tensors) -> None:
        decode_texts(inputs["text"])

    @torch.inference_mode()
    def infer(self, inputs: Tensors) -> Tensors:
        assert self.encoder is not None and self.head is not None, "infer before load"
        embeddings = self.encoder.encode_tensor(decode_texts(inputs["text"]))
        probabilities = torch.softmax(self.head(embeddings), dim=-1).numpy().astype(np.float32, copy=False)
        return {"label": self.labels[probabilities.argmax(axis=1)], "probabilities": probabilities}

    def warmup_inputs(self) -> Tensors:
        return {"text": np.array([b"warm up", b"where is my parcel"], dtype=object)}
