"""The engine's scheduling: the waiting bound, cancellation, priority, and failures that spare later requests.

The scripted model holds decode steps at a gate, so each scenario fixes exactly which step a cancel or a new
request meets.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from functions.generation.limits import EngineLimits, EngineStats
from functions.generation.schema import Chunk, FinishReason, GenerationEnd, GenerationError, Priority
from functions.generation.waiting import QueueFullError
from tests.functions.generation.engine_support import (
    Call,
    MakeEngine,
    Recorder,
    collect,
    ends,
    request,
    tokens_by_index,
    usage_of,
    wait_until,
)
from tests.functions.generation.tiny_lm import WordLM, greedy_alone

A = [5, 9, 12]
B = [7, 3, 3, 40, 22, 8, 17]
C = [30, 31, 2, 60, 11]
NO_EOS: dict[str, Any] = {"provider_extensions": {"ignore_eos": True}}


def test_a_full_waiting_queue_refuses_with_queue_full(make: MakeEngine) -> None:
    engine, lm = make(EngineLimits(max_running=1, max_waiting=1))
    lm.hold()
    running = Call(engine, request(A, rid="running", max_tokens=30, provider_extensions={"ignore_eos": True}))
    lm.wait_blocked(1)
    waiting = Call(engine, request(B, rid="waiting", max_tokens=5))
    wait_until(lambda: engine.stats().waiting_requests == 1)
    with pytest.raises(QueueFullError) as raised:
        engine.generate(request(C, rid="refused"))
    assert (raised.value.status, raised.value.retryable, raised.value.headers) == (503, True, {"Retry-After": "1"})
    assert engine.stats() == EngineStats(
        running_sequences=1, waiting_requests=1, waiting_sequences=1, queued_tokens=29 + 5
    )
    lm.release()
    assert ends(running.result())[0].completion_tokens == 30
    assert usage_of(waiting.result()).usage.prompt_tokens == len(B)
    assert [len(prompts[0]) for prompts in lm.prefilled] == [len(A), len(B)]


def test_cancelling_a_waiting_request_ends_it_unstarted(make: MakeEngine) -> None:
    observer = Recorder()
    engine, lm = make(EngineLimits(max_running=2), observer)

    async def scenario() -> tuple[list[Any], list[Any]]:
        lm.hold()
        running = await engine.open(request(A, rid="running", n=2, temperature=0.0, max_tokens=6))
        await asyncio.to_thread(lm.wait_blocked, 1)
        waiting = await engine.open(request(B, rid="waiting", n=2, max_tokens=5))
        await asyncio.to_thread(wait_until, lambda: engine.stats().waiting_requests == 1)
        waiting.cancel()
        lm.release()
        return await collect(waiting), await collect(running)

    cancelled, finished = asyncio.run(scenario())
    assert [type(c).__name__ for c in cancelled] == [
        "GenerationStart",
        "SequenceStart",
        "SequenceStart",
        "SequenceEnd",
        "SequenceEnd",
        "GenerationEnd",
    ]
    assert [(e.finish_reason, e.completion_tokens) for e in ends(cancelled).values()] == [
        (FinishReason.CANCELLED, 0)
    ] * 2
    usage = usage_of(cancelled).usage
    assert (usage.completion_tokens, usage.total_tokens, usage.time_to_first_token_s) == (0, len(B), None)
    assert observer.saved == [2 * 5]
    assert [e.finish_reason for e in ends(finished).values()] == [FinishReason.LENGTH] * 2
    assert lm.prefilled == [[A]]


@pytest.mark.parametrize("steps_before_cancel", [0, 3])
def test_cancelling_a_running_request_stops_it_within_one_step(make: MakeEngine, steps_before_cancel: int) -> None:
    observer = Recorder()
    engine, lm = make(EngineLimits(max_running=4), observer)
    expected_other, _ = greedy_alone(WordLM(lm.model), B, 12)

    async def scenario() -> tuple[list[Chunk], list[Chunk]]:
        lm.hold()
        doomed = await engine.open(request(A, rid="doomed", temperature=0.0, n=2, max_tokens=20, **NO_EOS))
        await asyncio.to_thread(lm.wait_blocked, 1)
        other = await engine.open(request(B, rid="other", temperature=0.0, max_tokens=12, **NO_EOS))
        await asyncio.to_thread(wait_until, lambda: engine.stats().waiting_requests == 1)
        lm.release(1 + steps_before_cancel)
        # The cancel arrives while this step, which computes the doomed rows too, is in progress.
        await asyncio.to_thread(lm.wait_blocked, 2 + steps_before_cancel)
        doomed.cancel()
        lm.release()
        return await collect(doomed), await collect(other)

    cancelled, finished = asyncio.run(scenario())
    done = 2 + steps_before_cancel  # the prefill's token, step 1 (alone), then the steps shared with the other
    assert [(e.finish_reason, e.completion_tokens) for e in ends(cancelled).values()] == [
        (FinishReason.CANCELLED, done)
    ] * 2
    assert {i: len(tokens) for i, tokens in tokens_by_index(cancelled).items()} == {0: done, 1: done}
    assert usage_of(cancelled).usage.completion_tokens == 2 * done
    assert observer.late == [2]  # at most the doomed request's rows, computed once and never sent
    assert observer.saved == [2 * (20 - done)]
    assert lm.rows_per_step[done - 1] == 3 and lm.rows_per_step[done] == 1
    assert tokens_by_index(finished) == {0: expected_other}
    assert ends(finished)[0].finish_reason is FinishReason.LENGTH


@pytest.mark.parametrize(
    ("queued", "order"),
    [
        ([("x", Priority.BATCH), ("y", Priority.INTERACTIVE)], ["y", "x"]),
        ([("x", Priority.BATCH), ("y", Priority.BATCH), ("z", Priority.INTERACTIVE)], ["z", "x", "y"]),
        ([("x", Priority.INTERACTIVE), ("y", Priority.INTERACTIVE)], ["x", "y"]),
    ],
)
def test_interactive_requests_start_before_batch_ones(
    make: MakeEngine, queued: list[tuple[str, Priority]], order: list[str]
) -> None:
    engine, lm = make(EngineLimits(max_running=1))
    prompts = {"x": A, "y": B, "z": C}
    lm.hold()
    first = Call(engine, request([2, 3], rid="first", max_tokens=3))
    lm.wait_blocked(1)
    calls = []
    for name, priority in queued:
        calls.append(Call(engine, request(prompts[name], rid=name, priority=priority, max_tokens=2)))
        wait_until(lambda: engine.stats().waiting_requests == len(calls))
    lm.release()
    for call in [first, *calls]:
        assert isinstance(call.result()[-1], GenerationEnd)
    assert lm.prefilled == [[[2, 3]]] + [[prompts[name]] for name in order]


def test_a_failed_decode_step_ends_every_running_request_and_the_engine_goes_on(make: MakeEngine) -> None:
    engine, lm = make(EngineLimits(max_running=4))
    lm.hold()
    first = Call(engine, request(A, rid="first", max_tokens=10, **NO_EOS))
    lm.wait_blocked(1)
    second = Call(engine, request(B, rid="second", n=2, max_tokens=10, **NO_EOS))
    wait_until(lambda: engine.stats().waiting_requests == 1)
    lm.fail_at = {2}
    lm.release()
    for call in (first, second):
        chunks = call.result()
        error = chunks[-1]
        assert isinstance(error, GenerationError)
        assert (error.code, error.index, error.message) == ("model_error", None, "generation failed: RuntimeError")
        assert not any(isinstance(chunk, GenerationEnd) for chunk in chunks)
    assert lm.rows_per_step[1] == 3
    assert engine.stats() == EngineStats(0, 0, 0, 0)
    expected, _ = greedy_alone(WordLM(lm.model), C, 4)
    after = engine.generate(request(C, rid="after", temperature=0.0, max_tokens=4))
    assert tokens_by_index(after) == {0: expected}


def test_a_failed_prefill_ends_only_the_joining_request(make: MakeEngine) -> None:
    engine, lm = make(EngineLimits(max_running=4))
    lm.poison = 63
    lm.hold()
    running = Call(engine, request(A, rid="running", temperature=0.0, max_tokens=6, **NO_EOS))
    lm.wait_blocked(1)
    joining = Call(engine, request([63, 4], rid="joining", max_tokens=6))
    wait_until(lambda: engine.stats().waiting_requests == 1)
    lm.release()
    failed = joining.result()
    assert len(failed) == 1 and isinstance(failed[0], GenerationError) and failed[0].code == "model_error"
    expected, _ = greedy_alone(WordLM(lm.model), A, 6)
    assert tokens_by_index(running.result()) == {0: expected}


def test_closing_the_engine_ends_waiting_and_running_requests_with_a_retryable_error(make: MakeEngine) -> None:
    engine, lm = make(EngineLimits(max_running=1))
    lm.hold()
    running = Call(engine, request(A, rid="running", max_tokens=30, **NO_EOS))
    lm.wait_blocked(1)
    waiting = Call(engine, request(B, rid="waiting", max_tokens=5))
    wait_until(lambda: engine.stats().waiting_requests == 1)
    closer = threading.Thread(target=engine.close)  # close() joins the engine thread, held at the gate
    closer.start()
    lm.release()
    closer.join(timeout=10)
    for call in (running, waiting):
        last = call.result()[-1]
        assert isinstance(last, GenerationError) and last.retryable and last.code == "unavailable"
    with pytest.raises(Exception, match="closed") as raised:
        engine.generate(request(C, rid="late"))
    assert getattr(raised.value, "status", None) == 503


def test_a_stream_whose_event_loop_closed_is_dropped_and_the_engine_goes_on(make: MakeEngine) -> None:
    engine, _lm = make(EngineLimits(max_running=2))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(engine.open(request(A, rid="orphan", max_tokens=40, **NO_EOS)))
    loop.close()
    chunks = engine.generate(request(B, rid="after", max_tokens=4))
    assert isinstance(chunks[-1], GenerationEnd) and chunks[-1].usage.completion_tokens == 4
    wait_until(lambda: engine.stats().running_sequences == 0)


@pytest.mark.parametrize(
    ("budget", "lengths", "groups"),
    [
        (4096, [3, 7, 5], [[3, 7, 5]]),  # everything fits: one prefill
        (14, [3, 7, 5], [[3, 7], [5]]),  # 2 x 7 = 14 fits, 3 x 7 = 21 does not
        (6, [3, 7, 5], [[3], [7], [5]]),  # a prompt longer than the budget still joins, alone
        (10, [5, 5, 5, 5], [[5, 5], [5, 5]]),
    ],
)
def test_prompts_prefilled_together_stay_under_the_token_budget(
    make: MakeEngine, budget: int, lengths: list[int], groups: list[list[int]]
) -> None:
    engine, lm = make(EngineLimits(max_running=8, max_prefill_tokens=budget))
    lm.hold()
    first = Call(engine, request([1, 2], rid="first", max_tokens=40, **NO_EOS))
    lm.wait_blocked(1)
    calls = [Call(engine, request(list(range(10, 10 + n)), rid=f"r{i}", max_tokens=2)) for i, n in enumerate(lengths)]
    wait_until(lambda: engine.stats().waiting_requests == len(lengths))
    lm.release()
    for call in [first, *calls]:
        assert isinstance(call.result()[-1], GenerationEnd)
    assert [[len(p) for p in prompts] for prompts in lm.prefilled[1:]] == groups


def test_generate_many_queues_every_request_at_once_so_they_share_the_batch(make: MakeEngine) -> None:
    engine, lm = make(EngineLimits(max_running=4))
    answers = engine.generate_many(
        [request(A, rid="a", max_tokens=5, **NO_EOS), request(B, rid="b", max_tokens=5, **NO_EOS)]
    )
    assert [usage_of(chunks).usage.completion_tokens for chunks in answers] == [5, 5]
    assert max(lm.rows_per_step) == 2  # decoded together, not one after the other
