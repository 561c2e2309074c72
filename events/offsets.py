"""Which offsets may be committed: the lowest offset per partition whose record is not finished yet."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class PartitionOffsets:
    """Offsets handed out and finished on one partition; finishing may happen out of order."""

    pending: set[int] = field(default_factory=set)
    highest: int = -1
    committed: int | None = None

    def started(self, offset: int) -> None:
        self.pending.add(offset)
        self.highest = max(self.highest, offset)

    def finished(self, offset: int) -> None:
        self.pending.discard(offset)

    def committable(self) -> int | None:
        """The offset to commit (next record to read), or None when nothing new is safe to commit."""
        if self.highest < 0:
            return None
        target = min(self.pending) if self.pending else self.highest + 1
        if self.committed is not None and target <= self.committed:
            return None
        return target


class OffsetTracker:
    """Per-partition watermarks for at-least-once commits; safe to use from several threads.

    Records start on the event loop, finish on the producer's I/O thread (when the broker acknowledged the
    reply) and are committed from the consumer's thread.
    """

    def __init__(self) -> None:
        self.partitions: dict[tuple[str, int], PartitionOffsets] = {}
        self._lock = threading.Lock()

    def started(self, topic: str, partition: int, offset: int) -> None:
        self.started_many([(topic, partition, offset)])

    def started_many(self, records: list[tuple[str, int, int]]) -> None:
        """``started`` for a whole fetch, under one acquisition of the lock."""
        with self._lock:
            for topic, partition, offset in records:
                self.partitions.setdefault((topic, partition), PartitionOffsets()).started(offset)

    def finished(self, topic: str, partition: int, offset: int) -> None:
        """Mark a record done; a partition revoked meanwhile is ignored."""
        with self._lock:
            offsets = self.partitions.get((topic, partition))
            if offsets is not None:
                offsets.finished(offset)

    def committable(self) -> dict[tuple[str, int], int]:
        with self._lock:
            result = {}
            for tp, offsets in self.partitions.items():
                target = offsets.committable()
                if target is not None:
                    result[tp] = target
            return result

    def mark_committed(self, offsets: dict[tuple[str, int], int]) -> None:
        with self._lock:
            for tp, offset in offsets.items():
                if tp in self.partitions:
                    self.partitions[tp].committed = offset

    def forget(self, partitions: list[tuple[str, int]]) -> None:
        with self._lock:
            for tp in partitions:
                self.partitions.pop(tp, None)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return sum(len(p.pending) for p in self.partitions.values())
