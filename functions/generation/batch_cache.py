"""The key/value cache of the running batch: one row per sequence, left-padded to a common width.

Each row keeps its own keys and values for as long as its sequence runs; a sequence that joins is appended
(its cache padded on the left, or the batch's), one that leaves is dropped and its memory freed, and columns
that only padding uses any more are cut off.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache


def _pad_left(tensor: torch.Tensor, width: int) -> torch.Tensor:
    missing = width - tensor.shape[2]
    if missing == 0:
        return tensor
    shape = (tensor.shape[0], tensor.shape[1], missing, tensor.shape[3])
    return torch.cat([tensor.new_zeros(shape), tensor], dim=2)


class BatchCache:
    """A ``DynamicCache`` whose row ``i`` holds its valid entries in the last ``lengths[i]`` columns."""

    def __init__(self) -> None:
        self.cache: DynamicCache | None = None
        self.lengths: list[int] = []

    @property
    def rows(self) -> int:
        return len(self.lengths)

    @property
    def width(self) -> int:
        return 0 if self.cache is None else int(self.cache.layers[0].keys.shape[2])

    def append(self, joining: DynamicCache, lengths: list[int], copies: list[int]) -> None:
        """Add the rows of ``joining`` (left-padded, row ``i`` holding a prompt of ``lengths[i]`` tokens),
        row ``i`` repeated ``copies[i]`` times."""
        repeats = torch.tensor(copies)
        width = max(self.width, int(joining.layers[0].keys.shape[2]))
        for i, layer in enumerate(joining.layers):
            keys = _pad_left(layer.keys, width).repeat_interleave(repeats, dim=0)
            values = _pad_left(layer.values, width).repeat_interleave(repeats, dim=0)
            if self.cache is not None and self.lengths:
                mine = self.cache.layers[i]
                keys = torch.cat([_pad_left(mine.keys, width), keys], dim=0)
                values = torch.cat([_pad_left(mine.values, width), values], dim=0)
            layer.keys, layer.values = keys, values
        self.cache = joining
        self.lengths += [n for n, k in zip(lengths, copies, strict=True) for _ in range(k)]

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in that order); drop columns no remaining row uses."""
        if not rows:
            self.cache, self.lengths = None, []
            return
        assert self.cache is not None
        self.lengths = [self.lengths[r] for r in rows]
        start = self.width - max(self.lengths)
        index = torch.tensor(rows)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, start:].contiguous()
            layer.values = layer.values.index_select(0, index)[:, :, start:].contiguous()

    def step_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention mask (the cache plus one new token per row) and position ids for the next decode step."""
        width = self.width
        lengths = torch.tensor(self.lengths)
        columns = torch.arange(width + 1)
        mask = (columns.unsqueeze(0) >= (width - lengths).unsqueeze(1)).long()
        return mask, lengths.unsqueeze(1)

    def advance(self) -> None:
        """Every row gained one entry (the token just decoded)."""
        self.lengths = [n + 1 for n in self.lengths]
