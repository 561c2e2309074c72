"""Choosing the next token from one sequence's logits: greedy, or temperature / top-k / top-p sampling.

Each sequence draws from its own ``torch.Generator`` seeded from the request's seed plus the sequence's
index, so a seeded result does not depend on what else runs in the same batch.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    """Per-sequence sampling controls; ``temperature == 0`` is greedy (argmax)."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def pick(self, logits: torch.Tensor, generator: torch.Generator | None) -> int:
        """The next token id from a 1-D logits row."""
        if self.greedy:
            return int(torch.argmax(logits))
        scores = logits.float() / self.temperature
        if 0 < self.top_k < scores.shape[-1]:
            kth = torch.topk(scores, self.top_k).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        if self.top_p < 1.0:
            ordered, order = torch.sort(probs, descending=True)
            before = torch.cumsum(ordered, dim=-1) - ordered
            # Keep the smallest prefix whose mass reaches top_p (the most likely token always stays).
            ordered = ordered.masked_fill(before >= self.top_p, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, ordered)
        return int(torch.multinomial(probs, 1, generator=generator))


def sequence_generator(seed: int | None, index: int) -> torch.Generator:
    """The random stream of sequence ``index`` of a request: ``seed + index``, or fresh randomness."""
    generator = torch.Generator()
    generator.manual_seed((seed + index) % 2**63 if seed is not None else secrets.randbits(63))
    return generator
