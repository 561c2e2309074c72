"""A transformers checkpoint checked against its own weights before the model is built.

``AutoModel.from_pretrained`` allocates every parameter ``config.json`` describes before it reads a weight,
so a config claiming a huge vocabulary or hidden size commits that memory first. Here the dimensions the
config declares are compared with the safetensors header (read without loading a tensor); pickled weights
(``pytorch_model.bin``) are refused, since unpickling runs code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.errors import ArtifactError
from functions.serving.artifact_checks import TensorInfo, read_header

WEIGHTS = "model.safetensors"
_LAYER = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")


def positive_int(config: dict[str, object], key: str) -> int:
    """``config[key]`` when it is a positive integer; :class:`ArtifactError` naming the key otherwise."""
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ArtifactError(f"config.json: {key} must be a positive integer, got {value!r}")
    return value


def read_config(path: Path) -> dict[str, object]:
    """The ``config.json`` of a checkpoint whose safetensors weights exist (pickled weights are refused)."""
    if not (path / WEIGHTS).is_file():
        raise ArtifactError(f"{path} has no {WEIGHTS} (pickled weights are not loaded)")
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: config.json cannot be read: {exc}") from exc
    if not isinstance(config, dict):
        raise ArtifactError(f"{path}: config.json is not an object")
    return config


def _find(tensors: dict[str, TensorInfo], suffix: str) -> TensorInfo:
    for name, info in tensors.items():
        if name == suffix or name.endswith("." + suffix):
            return info
    raise ArtifactError(f"{WEIGHTS} has no {suffix}; only BERT-style encoder checkpoints are supported")


def check_checkpoint(path: Path) -> None:
    """Raise :class:`ArtifactError` unless ``config.json`` and ``model.safetensors`` describe the same model."""
    config, weights = read_config(path), path / WEIGHTS
    hidden, vocab = positive_int(config, "hidden_size"), positive_int(config, "vocab_size")
    positions, layers = positive_int(config, "max_position_embeddings"), positive_int(config, "num_hidden_layers")
    intermediate = positive_int(config, "intermediate_size")
    tensors = read_header(weights)
    expected = {
        "embeddings.word_embeddings.weight": (vocab, hidden),
        "embeddings.position_embeddings.weight": (positions, hidden),
    }
    for suffix, shape in expected.items():
        found = _find(tensors, suffix)
        if found.shape != shape:
            raise ArtifactError(f"{WEIGHTS}: {suffix} is {list(found.shape)}, config.json implies {list(shape)}")
    indices = {int(m.group(1)) for name in tensors if (m := _LAYER.search(name))}
    if indices != set(range(layers)):
        raise ArtifactError(f"{WEIGHTS} has {len(indices)} encoder layers, config.json declares {layers}")
    found = _find(tensors, "encoder.layer.0.intermediate.dense.weight")
    if found.shape != (intermediate, hidden):
        raise ArtifactError(
            f"{WEIGHTS}: intermediate weights are {list(found.shape)}, config.json implies {[intermediate, hidden]}"
        )
