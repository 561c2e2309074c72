"""Commit bookkeeping of the event consumer: only what the broker accepted counts as committed.

The consumer object here is a stand-in for the commit call alone; consuming, producing and rebalancing against
the real tansu broker are covered in tests/integration/test_async.py.
"""

from __future__ import annotations

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
