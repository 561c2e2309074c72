"""A causal-LM checkpoint's claims are checked against its weights' header before anything is allocated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from core.errors import ArtifactError
from functions.generation.checkpoint import check_causal_checkpoint

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 8,
    "vocab_size": 16,
    "num_hidden_layers": 2,
    "max_position_embeddings": 32,
}
TENSORS = {
    "model.embed_tokens.weight": (16, 8),
    "model.layers.0.mlp.up_proj.weight": (4, 8),
    "model.layers.1.mlp.up_proj.weight": (4, 8),
}


def write(path: Path, config: object, tensors: dict[str, tuple[int, ...]], tokenizer: bool = True) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config))
    save_file({name: torch.zeros(shape) for name, shape in tensors.items()}, path / "model.safetensors")
    if tokenizer:
        (path / "tokenizer.json").write_text("{}")
    return path


@pytest.mark.parametrize(
    ("config", "tensors", "tokenizer", "error"),
    [
        (CONFIG, TENSORS, True, None),
        ({**CONFIG, "architectures": ["BertModel"]}, TENSORS, True, "ForCausalLM"),
        ({k: v for k, v in CONFIG.items() if k != "architectures"} | {"model_type": "llama"}, TENSORS, True, None),
        ({k: v for k, v in CONFIG.items() if k != "architectures"} | {"model_type": "resnet"}, TENSORS, True, "causal"),
        ({**CONFIG, "vocab_size": 10**9}, TENSORS, True, "config.json implies"),
        ({**CONFIG, "num_hidden_layers": 80}, TENSORS, True, "declares 80"),
        ({**CONFIG, "hidden_size": -1}, TENSORS, True, "positive integer"),
        (["not", "an", "object"], TENSORS, True, "not an object"),
        (CONFIG, {k: v for k, v in TENSORS.items() if "embed" not in k}, True, "embed_tokens"),
        (CONFIG, TENSORS, False, "no tokenizer"),
    ],
)
def test_checkpoint_claims_are_checked(
    tmp_path: Path, config: object, tensors: dict[str, tuple[int, ...]], tokenizer: bool, error: str | None
) -> None:
    path = write(tmp_path / "ckpt", config, tensors, tokenizer)
    if error is None:
        check_causal_checkpoint(path)
    else:
        with pytest.raises(ArtifactError, match=error):
            check_causal_checkpoint(path)


def test_pickled_weights_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80")
    with pytest.raises(ArtifactError, match="pickled"):
        check_causal_checkpoint(tmp_path)
