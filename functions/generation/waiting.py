"""The bounded queue of requests waiting to join the batch: by priority, then by arrival."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

from core.errors import OverloadedError

T = TypeVar("T")


class QueueFullError(OverloadedError):
    """Every waiting place is taken; the caller should retry after a while."""

    headers = {"Retry-After": "1"}


class WaitingQueue(Generic[T]):
    """At most ``capacity`` items; ``pop`` returns the highest priority (lowest number), oldest first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._heap: list[tuple[int, int, T]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, item: T, priority: int) -> None:
        if len(self._heap) >= self.capacity:
            raise QueueFullError(f"{self.capacity} requests are already waiting for the model; retry later")
        heapq.heappush(self._heap, (priority, next(self._order), item))

    def peek(self) -> T | None:
        return self._heap[0][2] if self._heap else None

    def items(self) -> list[T]:
        return [entry[2] for entry in self._heap]

    def pop(self) -> T:
        return heapq.heappop(self._heap)[2]

    def remove_if(self, drop: Callable[[T], bool]) -> list[T]:
        """Take out (and return) every waiting item for which ``drop`` is true."""
        dropped = [entry[2] for entry in self._heap if drop(entry[2])]
        if dropped:
            self._heap = [entry for entry in self._heap if not drop(entry[2])]
            heapq.heapify(self._heap)
        return dropped
