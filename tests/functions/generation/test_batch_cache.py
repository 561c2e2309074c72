"""BatchCache: rows of different lengths share one left-padded cache and decode as if each ran alone."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaForCausalLM
from transformers.cache_utils import DynamicCache

from functions.generation.batch_cache import BatchCache
from tests.functions.generation.tiny_lm import WordLM, greedy_alone

LAYERS, HEADS, DIM = 2, 2, 3


def entry(row: int, column: int, layer: int) -> float:
    """The value a row's ``column``-th valid entry holds: tells rows, positions and layers apart."""
    return 1000.0 * row + 10.0 * column + layer + 1


def synthetic(rows: list[int], lengths: list[int]) -> DynamicCache:
    """A left-padded cache of ``rows`` (their names) holding ``lengths`` valid entries each, zero padding."""
    width = max(lengths)
    cache = DynamicCache()
    for layer in range(LAYERS):
        keys = torch.zeros(len(rows), HEADS, width, DIM)
        for r, (row, n) in enumerate(zip(rows, lengths, strict=True)):
            for c in range(n):
                keys[r, :, width - n + c] = entry(row, c, layer)
        cache.update(keys, -keys, layer)
    return cache


def assert_holds(batch: BatchCache, rows: list[int]) -> None:
    """Row ``r`` of ``batch`` is the sequence named ``rows[r]``: its entries right-aligned, zeros before."""
    assert batch.cache is not None
    width = batch.width
    for layer, cached in enumerate(batch.cache.layers):
        assert cached.keys.shape == (len(rows), HEADS, width, DIM)
        assert torch.equal(cached.values, -cached.keys)
        for r, (row, n) in enumerate(zip(rows, batch.lengths, strict=True)):
            expected = torch.tensor([0.0] * (width - n) + [entry(row, c, layer) for c in range(n)])
            assert torch.equal(cached.keys[r, 0, :, 0], expected)


@pytest.mark.parametrize(
    ("first", "joining", "copies", "rows", "lengths", "width"),
    [
        # (rows, lengths) of the batch, (rows, lengths) joining, copies, expected rows, lengths, width
        (None, ([0], [4]), [1], [0], [4], 4),
        (None, ([0, 1], [2, 5]), [1, 1], [0, 1], [2, 5], 5),
        (([0], [6]), ([1], [2]), [1], [0, 1], [6, 2], 6),  # joining is shorter: it is padded
        (([0], [2]), ([1, 2], [5, 3]), [1, 1], [0, 1, 2], [2, 5, 3], 5),  # the batch is padded
        (([0], [3]), ([1, 2], [4, 2]), [2, 3], [0, 1, 1, 2, 2, 2], [3, 4, 4, 2, 2, 2], 4),
        (([0], [3]), ([1, 2], [4, 2]), [0, 2], [0, 2, 2], [3, 2, 2], 4),  # a row with no copy
    ],
)
def test_append(
    first: tuple[list[int], list[int]] | None,
    joining: tuple[list[int], list[int]],
    copies: list[int],
    rows: list[int],
    lengths: list[int],
    width: int,
) -> None:
    batch = BatchCache()
    assert (batch.rows, batch.width) == (0, 0)
    if first is not None:
        batch.append(synthetic(*first), first[1], [1] * len(first[0]))
    batch.append(synthetic(*joining), joining[1], copies)
    assert (batch.lengths, batch.width, batch.rows) == (lengths, width, len(rows))
    assert_holds(batch, rows)


@pytest.mark.parametrize(
    ("lengths", "keep", "kept_lengths", "width"),
    [
        ([3, 6, 4], [0, 1, 2], [3, 6, 4], 6),
        ([3, 6, 4], [0, 2], [3, 4], 4),  # the longest left: padding-only columns go
        ([3, 6, 4], [2, 0], [4, 3], 4),  # in the order asked for
        ([3, 6, 4], [1], [6], 6),
        ([5, 5], [1], [5], 5),
        ([1, 2, 7, 3], [3, 0], [3, 1], 3),
    ],
)
def test_keep_drops_rows_and_trims_padding(
    lengths: list[int], keep: list[int], kept_lengths: list[int], width: int
) -> None:
    batch = BatchCache()
    batch.append(synthetic(list(range(len(lengths))), lengths), lengths, [1] * len(lengths))
    batch.keep(keep)
    assert (batch.lengths, batch.width) == (kept_lengths, width)
    assert_holds(batch, keep)


def test_keeping_no_row_empties_the_batch() -> None:
    batch = BatchCache()
    batch.append(synthetic([0, 1], [2, 3]), [2, 3], [1, 1])
    batch.keep([])
    assert (batch.cache, batch.rows, batch.width) == (None, 0, 0)
    batch.append(synthetic([5], [2]), [2], [1])  # and it can be filled again
    assert_holds(batch, [5])


@pytest.mark.parametrize(
    ("lengths", "mask", "positions"),
    [
        ([3], [[1, 1, 1, 1]], [[3]]),
        ([2, 4], [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], [[2], [4]]),
        ([1, 3, 2], [[0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]], [[1], [3], [2]]),
    ],
)
def test_step_inputs_mask_padding_and_place_the_new_token(
    lengths: list[int], mask: list[list[int]], positions: list[list[int]]
) -> None:
    batch = BatchCache()
    batch.append(synthetic(list(range(len(lengths))), lengths), lengths, [1] * len(lengths))
    got_mask, got_positions = batch.step_inputs()
    assert got_mask.tolist() == mask
    assert got_positions.tolist() == positions
    batch.advance()
    assert batch.lengths == [n + 1 for n in lengths]


PROMPTS = {"a": [5, 9, 12], "b": [7, 3, 3, 40, 22, 8, 17], "c": [30, 31, 2, 60, 11], "d": [44, 45]}
TOKENS = 9


def test_rows_joining_and_leaving_decode_as_each_prompt_alone(tiny_model: LlamaForCausalLM) -> None:
    lm = WordLM(tiny_model)
    alone = {name: greedy_alone(lm, prompt, TOKENS) for name, prompt in PROMPTS.items()}
    batch = BatchCache()
    rows: list[str] = []
    picked: dict[str, list[int]] = {}

    def join(names: list[str], copies: list[int]) -> None:
        logits, cache = lm.prefill([PROMPTS[n] for n in names])
        for row, (name, k) in enumerate(zip(names, copies, strict=True)):
            torch.testing.assert_close(logits[row], alone[name][1][0], atol=1e-4, rtol=1e-4)
            for copy in range(k):
                picked[f"{name}{copy}"] = [int(torch.argmax(logits[row]))]
                rows.append(f"{name}{copy}")
        batch.append(cache, [len(PROMPTS[n]) for n in names], copies)

    def step() -> None:
        logits = lm.decode_step([picked[r][-1] for r in rows], batch)
        for row, name in enumerate(rows):
            torch.testing.assert_close(logits[row], alone[name[0]][1][len(picked[name])], atol=1e-4, rtol=1e-4)
            picked[name].append(int(torch.argmax(logits[row])))

    join(["a"], [1])
    step()
    step()
    join(["b", "c"], [1, 1])  # a longer and a shorter prompt than the running row's cache
    step()
    step()
    keep = [i for i, r in enumerate(rows) if r != "b0"]  # the longest row leaves: the width shrinks
    width = batch.width
    batch.keep(keep)
    rows[:] = [rows[i] for i in keep]
    assert batch.width < width
    join(["d"], [2])  # two sequences of one prompt
    while any(len(picked[r]) < TOKENS for r in rows):
        step()
        for r in [r for r in rows if len(picked[r]) == TOKENS]:
            keep = [i for i, other in enumerate(rows) if other != r]
            batch.keep(keep)
            rows[:] = [rows[i] for i in keep]
    for name, tokens in picked.items():
        assert tokens == alone[name[0]][0][: len(tokens)], name
    assert {name: len(tokens) for name, tokens in picked.items()} == {
        "a0": TOKENS,
        "b0": 3,
        "c0": TOKENS,
        "d0": TOKENS,
        "d1": TOKENS,
    }
