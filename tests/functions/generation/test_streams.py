"""Streams: which chunk ends a request, and a blocking sink that drains exactly up to it."""

from __future__ import annotations

import queue
import threading

import pytest

from functions.generation.schema import (
    Chunk,
    Delta,
    FinishReason,
    GenerationEnd,
    GenerationError,
    GenerationStart,
    SequenceEnd,
    SequenceStart,
    Usage,
)
from functions.generation.streams import BlockingSink, is_last

END = GenerationEnd(usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2))


@pytest.mark.parametrize(
    ("chunk", "last"),
    [
        (GenerationStart(id="r", created=0, model="m"), False),
        (SequenceStart(index=0), False),
        (Delta(index=0, text="x"), False),
        (SequenceEnd(index=0, finish_reason=FinishReason.STOP, completion_tokens=1), False),
        (GenerationError(code="model_error", message="one sequence", index=0), False),
        (GenerationError(code="model_error", message="the whole request"), True),
        (END, True),
    ],
)
def test_is_last(chunk: Chunk, last: bool) -> None:
    assert is_last(chunk) is last


def test_blocking_sink_drains_every_batch_up_to_the_last_chunk() -> None:
    sink = BlockingSink(bound=8)
    batches: list[list[Chunk]] = [
        [GenerationStart(id="r", created=0, model="m"), SequenceStart(index=0)],
        [Delta(index=0, text="a")],
        [Delta(index=0, text="b"), SequenceEnd(index=0, finish_reason=FinishReason.STOP, completion_tokens=2), END],
    ]

    def feed() -> None:
        for batch in batches:
            sink.deliver(batch)

    feeder = threading.Thread(target=feed)
    feeder.start()
    assert sink.drain(timeout_s=10) == [chunk for batch in batches for chunk in batch]
    feeder.join(timeout=10)


def test_blocking_sink_times_out_without_a_last_chunk() -> None:
    sink = BlockingSink(bound=2)
    sink.deliver([SequenceStart(index=0)])
    with pytest.raises(queue.Empty):
        sink.drain(timeout_s=0.05)
