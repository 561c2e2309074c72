"""Bookkeeping of the event consumer: only what the broker accepted counts as committed, and a full consumer is
woken by acknowledgements rather than polling.

The consumer object here is a stand-in for the commit call alone; consuming, producing and rebalancing against
the real tansu broker are covered in tests/integration/test_async.py.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException

from events.consumer import EventConsumer
from events.contract import Topics


class CommitAnswers:
    def __init__(self, answer):
        self.answer = answer
        self.requests: list[list[tuple[str, int, int]]] = []

    def commit(self, offsets, asynchronous):
        assert asynchronous is False
        self.requests.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer(offsets)


def accept_all(offsets):
    return offsets


def refuse_partition_1(offsets):
    """librdkafka answers per partition; an answered partition carries its error."""
    refused = KafkaError(KafkaError.REBALANCE_IN_PROGRESS)
    return [
        SimpleNamespace(
            topic=tp.topic, partition=tp.partition, offset=tp.offset, error=refused if tp.partition else None
        )
        for tp in offsets
    ]


@pytest.mark.parametrize(
    ("answer", "committed_after", "second_request"),
    [
        (accept_all, {("t", 0): 3, ("t", 1): 2}, []),
        (refuse_partition_1, {("t", 0): 3}, [("t", 1, 2)]),
        (KafkaException(KafkaError(KafkaError._TIMED_OUT)), {}, [("t", 0, 3), ("t", 1, 2)]),
    ],
    ids=["accepted", "one_partition_refused", "commit_failed"],
)
def test_only_accepted_offsets_count_as_committed(answer, committed_after, second_request):
    consumer = CommitAnswers(answer)
    runner = EventConsumer(consumer, None, None, Topics("p", "r", "d"), max_in_flight=8)  # type: ignore[arg-type]
    runner.tracker.started_many([("t", 0, 0), ("t", 0, 1), ("t", 0, 2), ("t", 1, 0), ("t", 1, 1)])
    for partition, offset in ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1)):
        runner.tracker.finished("t", partition, offset)
    runner._commit_now()
    assert sorted(consumer.requests[0]) == [("t", 0, 3), ("t", 1, 2)]
    assert {tp: p.committed for tp, p in runner.tracker.partitions.items() if p.committed is not None} == (
        committed_after
    )
    consumer.answer = accept_all
    runner._commit_now()  # what was not accepted is asked again, nothing else
    asked_again = sorted(consumer.requests[1]) if len(consumer.requests) > 1 else []
    assert asked_again == second_request


@pytest.mark.parametrize(
    ("finished", "woken"),
    [
        (0, False),  # still full
        (1, False),  # one slot free: less than an eighth of the bound
        (2, True),  # an eighth of 16 free: the acknowledgements thread wakes the loop
        (5, True),
    ],
)
def test_a_full_consumer_is_woken_when_an_eighth_of_its_room_is_free(monkeypatch, finished, woken):
    monkeypatch.setattr("events.consumer.FULL_WAIT_S", 1.0)
    runner = EventConsumer(None, None, None, Topics("p", "r", "d"), max_in_flight=16)  # type: ignore[arg-type]
    runner.tracker.started_many([("t", 0, offset) for offset in range(16)])

    async def main() -> float:
        runner._loop = asyncio.get_running_loop()
        waiter = asyncio.create_task(runner._wait_for_room())
        await asyncio.sleep(0.01)

        def acknowledge() -> None:  # as delivery reports do, on their own thread
            for offset in range(finished):
                runner.tracker.finished("t", 0, offset)
                runner._room_freed()

        await asyncio.get_running_loop().run_in_executor(None, acknowledge)
        started = time.monotonic()
        await waiter
        return time.monotonic() - started

    waited = asyncio.run(main())
    assert (waited < 0.5) is woken
    assert runner._room_wanted == 0
