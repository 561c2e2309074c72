"""WaitingQueue: priority first, then arrival; a bound that answers 503 with Retry-After."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.errors import OverloadedError
from functions.generation.waiting import QueueFullError, WaitingQueue


@pytest.mark.parametrize(
    ("pushed", "popped"),
    [
        ([("a", 0), ("b", 0), ("c", 0)], ["a", "b", "c"]),
        ([("batch", 1), ("interactive", 0)], ["interactive", "batch"]),
        ([("b1", 1), ("i1", 0), ("b2", 1), ("i2", 0)], ["i1", "i2", "b1", "b2"]),
        ([("low", 5), ("mid", 3), ("high", 0), ("mid2", 3)], ["high", "mid", "mid2", "low"]),
    ],
)
def test_pops_by_priority_then_arrival(pushed: list[tuple[str, int]], popped: list[str]) -> None:
    queue: WaitingQueue[str] = WaitingQueue(capacity=10)
    for item, priority in pushed:
        queue.push(item, priority)
    assert sorted(queue.items()) == sorted(item for item, _ in pushed)
    assert queue.peek() == popped[0]
    assert [queue.pop() for _ in pushed] == popped
    assert len(queue) == 0
    assert queue.peek() is None


@pytest.mark.parametrize("capacity", [0, 1, 3])
def test_full_queue_refuses_with_a_retryable_503(capacity: int) -> None:
    queue: WaitingQueue[int] = WaitingQueue(capacity)
    for i in range(capacity):
        queue.push(i, 0)
    with pytest.raises(QueueFullError) as raised:
        queue.push(99, 0)
    error = raised.value
    assert isinstance(error, OverloadedError)
    assert (error.status, error.retryable, error.headers) == (503, True, {"Retry-After": "1"})
    assert str(capacity) in error.message
    assert sorted(queue.items()) == list(range(capacity))
    if capacity:
        queue.pop()
        queue.push(99, 0)  # a freed place can be taken again
        assert 99 in queue.items()


@pytest.mark.parametrize(
    ("items", "drop", "dropped", "left_in_order"),
    [
        ([1, 2, 3, 4], lambda x: x % 2 == 0, [2, 4], [1, 3]),
        ([1, 2, 3], lambda x: False, [], [1, 2, 3]),
        ([1, 2, 3], lambda x: True, [1, 2, 3], []),
    ],
)
def test_remove_if_takes_out_matches_and_keeps_order(
    items: list[int], drop: Callable[[int], bool], dropped: list[int], left_in_order: list[int]
) -> None:
    queue: WaitingQueue[int] = WaitingQueue(capacity=10)
    for item in items:
        queue.push(item, priority=item % 2)  # odd ones are the lower priority
    assert sorted(queue.remove_if(drop)) == dropped
    assert len(queue) == len(left_in_order)
    expected = sorted(left_in_order, key=lambda x: (x % 2, items.index(x)))
    assert [queue.pop() for _ in left_in_order] == expected


def test_removing_frees_places() -> None:
    queue: WaitingQueue[str] = WaitingQueue(capacity=2)
    queue.push("a", 0)
    queue.push("b", 0)
    assert queue.remove_if(lambda x: x == "a") == ["a"]
    queue.push("c", 0)
    assert [queue.pop(), queue.pop()] == ["b", "c"]
