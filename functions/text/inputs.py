"""BYTES tensors of UTF-8 text, shared by the text functions."""

from __future__ import annotations

import numpy as np

from core.errors import InvalidInputError


def decode_texts(array: np.ndarray, *, name: str = "text", max_chars: int = 20_000) -> list[str]:
    """Decode a BYTES tensor of shape [N] into strings; invalid UTF-8 or oversize items are a 400."""
    texts = []
    for i, item in enumerate(array.reshape(-1)):
        try:
            text = item.decode("utf-8") if isinstance(item, bytes | bytearray) else str(item)
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"input '{name}': element {i} is not valid UTF-8 ({exc.reason})") from exc
        if len(text) > max_chars:
            raise InvalidInputError(f"input '{name}': element {i} has {len(text)} characters, limit {max_chars}")
        texts.append(text)
    return texts
