"""The continuous batching engine over a tiny random Llama: results, limits, cancellation, priority, failures."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InvalidInputError
from functions.generation.limits import EngineLimits
from functions.generation.schema import (
    FinishReason,
    GenerationRequest,
    GenerationStart,
    Message,
    SequenceStart,
)
from tests.functions.generation.engine_support import (
    Call,
    MakeEngine,
    ends,
    request,
    tokens_by_index,
    usage_of,
    wait_until,
)
from tests.functions.generation.tiny_lm import CONTEXT, WordLM, greedy_alone, words

A = [5, 9, 12]
B = [7, 3, 3, 40, 22, 8, 17]
C = [30, 31, 2, 60, 11]


@pytest.mark.parametrize(
    "generation",
    [
        request(A, temperature=0.0, max_tokens=10),
        request(B, temperature=0.0, max_tokens=10, top_k=5),
        GenerationRequest.model_validate(
            {
                "id": "chat",
                "model": "tiny",
                "messages": [Message(role="user", content=words(C))],
                "generation_parameters": {"temperature": 0.0, "max_tokens": 10},
            }
        ),
    ],
    ids=["prompt", "prompt-top-k-ignored-by-greedy", "messages"],
)
def test_a_request_alone_decodes_as_a_greedy_loop(make: MakeEngine, generation: GenerationRequest) -> None:
    engine, lm = make()
    prompt = lm.encode_chat(generation.messages) if generation.messages else lm.encode_prompt(generation.prompt or "")
    expected, _ = greedy_alone(WordLM(lm.model), prompt, 10)
    chunks = engine.generate(generation, timeout_s=30)
    assert isinstance(chunks[0], GenerationStart) and chunks[0].id == generation.id and chunks[0].model == "tiny"
    assert chunks[1] == SequenceStart(index=0)
    assert tokens_by_index(chunks) == {0: expected}
    assert ends(chunks)[0].finish_reason is FinishReason.LENGTH
    assert usage_of(chunks).usage.completion_tokens == 10


def test_seeded_sequences_reproduce_while_another_request_runs(make: MakeEngine) -> None:
    engine, lm = make(EngineLimits(max_running=4))
    seeded = request(A, temperature=1.0, n=2, seed=1234, max_tokens=12, provider_extensions={"ignore_eos": True})
    alone = tokens_by_index(engine.generate(seeded, timeout_s=30))
    assert max(lm.rows_per_step) == 2
    assert alone[0] != alone[1]

    lm.hold()
    other = Call(
        engine, request(B, rid="other", temperature=0.0, max_tokens=30, provider_extensions={"ignore_eos": True})
    )
    lm.wait_blocked(lm.steps + 1)
    again = Call(engine, seeded)
    wait_until(lambda: engine.stats().waiting_requests == 1)
    lm.release()
    assert tokens_by_index(again.result()) == alone
    assert ends(other.result())[0].completion_tokens == 30
    assert max(lm.rows_per_step) == 3  # the seeded pair decoded in one batch with the other request


@pytest.mark.parametrize(("max_tokens", "n"), [(1, 1), (3, 1), (7, 2), (5, 3)])
def test_max_tokens_ends_each_sequence_with_length(make: MakeEngine, max_tokens: int, n: int) -> None:
    engine, _ = make()
    chunks = engine.generate(
        request(A, temperature=0.0, n=n, max_tokens=max_tokens, provider_extensions={"ignore_eos": True})
    )
    assert [(e.finish_reason, e.completion_tokens) for e in ends(chunks).values()] == [
        (FinishReason.LENGTH, max_tokens)
    ] * n
    generated = tokens_by_index(chunks)
    assert [len(tokens) for tokens in generated.values()] == [max_tokens] * n
    assert all(tokens == generated[0] for tokens in generated.values())  # greedy: every copy alike
    usage = usage_of(chunks).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        len(A),
        n * max_tokens,
        len(A) + n * max_tokens,
    )
    assert usage.time_to_first_token_s is not None and usage.time_to_first_token_s >= 0


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_usage_sums_the_sequences(make: MakeEngine, seed: int) -> None:
    engine, lm = make()
    lm.eos_ids = frozenset({1, 13, 20, 33})  # common enough that some sequences stop early
    chunks = engine.generate(request(B, temperature=1.5, n=4, seed=seed, max_tokens=15))
    sequence_ends = ends(chunks)
    generated = tokens_by_index(chunks)
    assert sorted(sequence_ends) == [0, 1, 2, 3]
    for index, end in sequence_ends.items():
        words_sent = len(generated.get(index, []))
        # The end-of-sequence token counts as generated but has no text.
        assert words_sent == end.completion_tokens - (end.finish_reason is FinishReason.STOP)
    usage = usage_of(chunks).usage
    assert usage.completion_tokens == sum(end.completion_tokens for end in sequence_ends.values())
    assert usage.prompt_tokens + usage.completion_tokens == usage.total_tokens
    assert usage.prompt_tokens == len(B)
    assert {end.finish_reason for end in sequence_ends.values()} == {FinishReason.STOP, FinishReason.LENGTH}


def test_end_of_sequence_as_first_token_ends_at_prefill(make: MakeEngine) -> None:
    engine, lm = make()
    first = greedy_alone(WordLM(lm.model), A, 1)[0][0]
    lm.eos_ids = frozenset({first})
    chunks = engine.generate(request(A, temperature=0.0, n=2, max_tokens=5))
    assert [(e.finish_reason, e.completion_tokens) for e in ends(chunks).values()] == [(FinishReason.STOP, 1)] * 2
    assert tokens_by_index(chunks) == {}
    assert lm.steps == 0
    assert usage_of(engine.generate(request(C, temperature=0.0, max_tokens=2))).usage.completion_tokens == 2


@pytest.mark.parametrize(
    ("fields", "limits", "message"),
    [
        ({"prompt": words([2] * CONTEXT)}, EngineLimits(), "context is 64 tokens"),
        ({"prompt": words([2] * 60), "generation_parameters": {"max_tokens": 5}}, EngineLimits(), "5 more"),
        ({"prompt": ""}, EngineLimits(), "empty"),
        ({}, EngineLimits(), "exactly one"),
        ({"prompt": "w2", "messages": [{"role": "user", "content": "w2"}]}, EngineLimits(), "exactly one"),
        ({"messages": []}, EngineLimits(), "must not be empty"),
        ({"prompt": "w2", "generation_parameters": {"n": 3}}, EngineLimits(max_running=2), "at most 2"),
        (
            {"prompt": "w2", "generation_parameters": {"provider_extensions": {"ignore_eos": "yes"}}},
            EngineLimits(),
            "ignore_eos",
        ),
    ],
)
def test_invalid_requests_are_refused(
    make: MakeEngine, fields: dict[str, Any], limits: EngineLimits, message: str
) -> None:
    engine, lm = make(limits)
    with pytest.raises(InvalidInputError, match=message) as raised:
        engine.generate(GenerationRequest.model_validate({"id": "r", "model": "tiny", **fields}))
    assert raised.value.status == 400
    assert lm.prefilled == []


@pytest.mark.parametrize(("max_tokens", "generated"), [({"max_tokens": 4}, 4), ({}, 4)])
def test_a_prompt_near_the_context_gets_the_room_left(
    make: MakeEngine, max_tokens: dict[str, Any], generated: int
) -> None:
    engine, _ = make()
    generation = request([2] * (CONTEXT - 4), provider_extensions={"ignore_eos": True}, **max_tokens)
    assert ends(engine.generate(generation))[0].completion_tokens == generated
