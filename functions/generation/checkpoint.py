"""A causal-LM checkpoint checked against its own weights before the model is built (decoder-only models whose
weights follow the ``model.embed_tokens`` / ``model.layers.N`` naming: Llama, Mistral, Qwen and their kin).

As for the encoders (:mod:`functions.text.checkpoint`), ``from_pretrained`` would allocate what ``config.json``
claims before reading a weight, so the claims are compared with the safetensors header first; pickled weights
are refused.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.errors import ArtifactError
from functions.serving.artifact_checks import read_header
from functions.text.checkpoint import WEIGHTS, positive_int, read_config

EMBEDDINGS = "model.embed_tokens.weight"
_LAYER = re.compile(r"^model\.layers\.(\d+)\.")


def check_causal_checkpoint(path: Path) -> None:
    """Raise :class:`ArtifactError` unless ``path`` holds a decoder-only checkpoint whose config matches its weights."""
    config, weights = read_config(path), path / WEIGHTS
    architectures = config.get("architectures")
    if architectures is None:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        if config.get("model_type") not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            raise ArtifactError(f"config.json: model_type {config.get('model_type')!r} is not a causal language model")
    elif not isinstance(architectures, list) or not any(str(a).endswith("ForCausalLM") for a in architectures):
        raise ArtifactError(f"config.json: architectures {architectures!r} names no ...ForCausalLM model")
    hidden, vocab = positive_int(config, "hidden_size"), positive_int(config, "vocab_size")
    layers = positive_int(config, "num_hidden_layers")
    positive_int(config, "max_position_embeddings")
    tensors = read_header(weights)
    embeddings = tensors.get(EMBEDDINGS)
    if embeddings is None:
        raise ArtifactError(f"{WEIGHTS} has no {EMBEDDINGS}")
    if embeddings.shape != (vocab, hidden):
        raise ArtifactError(
            f"{WEIGHTS}: {EMBEDDINGS} is {list(embeddings.shape)}, config.json implies {[vocab, hidden]}"
        )
    indices = {int(m.group(1)) for name in tensors if (m := _LAYER.match(name))}
    if indices != set(range(layers)):
        raise ArtifactError(f"{WEIGHTS} has {len(indices)} decoder layers, config.json declares {layers}")
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
        raise ArtifactError(f"{path} has no tokenizer (tokenizer.json or tokenizer_config.json)")
