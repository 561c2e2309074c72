"""SmolLM2-135M-Instruct (or any causal-LM checkpoint given as artifacts), served by the batching engine.

v2 ``infer`` takes BYTES ``text_input`` rows as user messages and answers greedily with ``text_output``;
streaming, sampling and the OpenAI routes go through :attr:`engine` (see :mod:`functions.serving.openai`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import ModelError
from core.ids import new_id
from functions.contract import BatchingDefaults, GenerativeFunction, Tensors, TensorSpec
from functions.text.inputs import decode_texts


class Generator(GenerativeFunction):
    """BYTES ``text_input`` [N] → BYTES ``text_output`` [N]; token streams through the engine."""

    name = "generator"
    inputs = (TensorSpec("text_input", "BYTES", (-1,)),)
    outputs = (TensorSpec("text_output", "BYTES", (-1,)),)
    batching = BatchingDefaults(max_batch_size=16, max_delay_ms=0.0, max_queue=64)
    version = "smollm2-135m-instruct"
    infer_max_tokens = 64

    def load(self, artifacts: Path | None) -> None:
        from functions.generation.causal_lm import CausalLM
        from functions.generation.checkpoint import check_causal_checkpoint
        from functions.generation.engine import ContinuousBatchingEngine
        from functions.generation.limits import EngineLimits
        from functions.generator.artifact import packaged_checkpoint

        if artifacts is not None:
            check_causal_checkpoint(artifacts)
        cache_dir = self.cache_dir or Path.home() / ".cache" / "wakeserve" / "models" / ".converted"
        checkpoint = artifacts or packaged_checkpoint(cache_dir)
        self.engine = ContinuousBatchingEngine(CausalLM(checkpoint), self.limits or EngineLimits(), self.observer)
        if artifacts is not None:
            self.version = checkpoint.name

    def check(self, inputs: Tensors) -> None:
        decode_texts(inputs["text_input"])

    def infer(self, inputs: Tensors) -> Tensors:
        from functions.generation.schema import (
            Delta,
            GenerationError,
            GenerationParameters,
            GenerationRequest,
            Message,
        )

        engine = self.require_engine()
        params = GenerationParameters(temperature=0.0, max_tokens=self.infer_max_tokens)
        requests = [
            GenerationRequest(
                id=new_id(),
                model=self.name,
                messages=[Message(role="user", content=text)],
                generation_parameters=params,
            )
            for text in decode_texts(inputs["text_input"])
        ]
        texts = []
        for chunks in engine.generate_many(requests):
            failed = [c for c in chunks if isinstance(c, GenerationError)]
            if failed:
                raise ModelError(failed[0].message)
            texts.append("".join(c.text for c in chunks if isinstance(c, Delta)).encode())
        return {"text_output": np.array(texts, dtype=object)}

    def warmup_inputs(self) -> Tensors:
        return {"text_input": np.array([b"Say hello."], dtype=object)}
