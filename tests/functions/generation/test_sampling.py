"""Sampling: greedy is argmax; temperature, top-k and top-p shape the distribution; seeds reproduce per sequence."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from functions.generation.sampling import Sampling, sequence_generator

DRAWS = 2000


def draws(sampling: Sampling, logits: list[float], seed: int = 7, count: int = DRAWS) -> Counter[int]:
    generator = sequence_generator(seed, 0)
    row = torch.tensor(logits)
    return Counter(sampling.pick(row, generator) for _ in range(count))


LOGITS = [
    [0.1, 3.0, -1.0, 2.9],
    [5.0, 4.0, 3.0],
    [-2.0, -1.0, -3.0, -0.5, -4.0],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.01],
]


@pytest.mark.parametrize("logits", LOGITS)
def test_greedy_is_argmax_and_draws_nothing(logits: list[float]) -> None:
    generator = sequence_generator(1, 0)
    before = generator.get_state()
    assert Sampling(temperature=0.0).greedy
    assert Sampling(temperature=0.0, top_k=3, top_p=0.5).pick(torch.tensor(logits), generator) == max(
        range(len(logits)), key=logits.__getitem__
    )
    assert torch.equal(generator.get_state(), before)


@pytest.mark.parametrize("temperature", [0.1, 1.0, 2.0])
@pytest.mark.parametrize("logits", LOGITS)
def test_top_k_one_is_argmax_at_any_temperature(logits: list[float], temperature: float) -> None:
    argmax = max(range(len(logits)), key=logits.__getitem__)
    assert draws(Sampling(temperature=temperature, top_k=1), logits, count=200) == {argmax: 200}


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("logits", LOGITS)
def test_tiny_top_p_keeps_only_the_most_likely_token(logits: list[float], temperature: float) -> None:
    argmax = max(range(len(logits)), key=logits.__getitem__)
    assert draws(Sampling(temperature=temperature, top_p=1e-6), logits, count=200) == {argmax: 200}


def softmax(logits: list[float], temperature: float) -> list[float]:
    exps = [math.exp(x / temperature) for x in logits]
    return [e / sum(exps) for e in exps]


@pytest.mark.parametrize(
    ("temperature", "top_token_share"),
    [(0.5, 0.867), (1.0, 0.665), (2.0, 0.506)],  # softmax([2, 1, 0] / T)[0]
)
def test_temperature_sharpens_or_flattens_the_distribution(temperature: float, top_token_share: float) -> None:
    logits = [2.0, 1.0, 0.0]
    counts = draws(Sampling(temperature=temperature), logits)
    assert softmax(logits, temperature)[0] == pytest.approx(top_token_share, abs=1e-3)
    for token, expected in enumerate(softmax(logits, temperature)):
        # ~4 standard deviations of a 2000-draw share; the generator is seeded, so this never flickers.
        assert counts[token] / DRAWS == pytest.approx(expected, abs=0.045)


PROBS = [0.5, 0.3, 0.15, 0.05]


@pytest.mark.parametrize(
    ("sampling", "allowed"),
    [
        (Sampling(top_k=2), {0, 1}),
        (Sampling(top_k=3), {0, 1, 2}),
        (Sampling(top_k=10), {0, 1, 2, 3}),  # more than the vocabulary: no cut
        (Sampling(top_p=0.7), {0, 1}),  # 0.5 < 0.7, 0.5 + 0.3 reaches it
        (Sampling(top_p=0.5), {0}),
        (Sampling(top_p=0.9), {0, 1, 2}),
        (Sampling(top_k=3, top_p=0.5), {0}),
        (Sampling(temperature=2.0, top_k=2), {0, 1}),
    ],
)
def test_tokens_cut_by_top_k_or_top_p_are_never_picked(sampling: Sampling, allowed: set[int]) -> None:
    counts = draws(sampling, [math.log(p) for p in PROBS])
    assert set(counts) == allowed


def picks(seed: int | None, index: int, count: int = 50) -> list[int]:
    generator = sequence_generator(seed, index)
    uniform = torch.zeros(64)
    return [Sampling().pick(uniform, generator) for _ in range(count)]


@pytest.mark.parametrize("seed", [0, 42, 2**63 - 1])
def test_seed_and_index_reproduce_a_sequence_and_indexes_differ(seed: int) -> None:
    assert picks(seed, 0) == picks(seed, 0)
    assert picks(seed, 1) == picks(seed, 1)
    assert picks(seed, 0) != picks(seed, 1)


def test_index_is_added_to_the_seed() -> None:
    assert picks(10, 3) == picks(13, 0) == picks(11, 2)


def test_no_seed_draws_fresh_randomness() -> None:
    # 50 uniform draws over 64 tokens coincide with probability 64**-50.
    assert picks(None, 0) != picks(None, 0)
