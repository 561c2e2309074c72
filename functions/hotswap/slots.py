"""Two model slots in one replica: the active version serves while a candidate loads, is gated and takes over.

Each slot has its own function instance, compute thread and batcher. A request is bound to one slot when it
arrives and finishes there, so promoting a candidate switches new requests at once while requests and batches
already in flight complete on the version that started them; the old slot is released when its last request
is done. A canary split sends a given percentage of new requests to a gated candidate, deterministically
(every ``100 / percent``-th request), so small percentages mean what they say even at low traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from functions.contract import Function
from functions.hotswap.documents import GateDocument, Sample, SlotDocument, SlotState, VersionCountsDocument
from functions.hotswap.gates import GateResult
from functions.serving.batching import DynamicBatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int
    max_delay_ms: float
    max_queue: int


class Slot:
    """One loaded (or loading) version of a function with its own compute thread and batcher."""

    def __init__(
        self,
        function: Function,
        batching: BatchingConfig,
        *,
        role: str,
        source: str,
        observe_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.function = function
        self.source = source
        self.version = function.version
        self.digest: str | None = None  # of the artifacts, once resolved
        self.state = SlotState.LOADING
        self.gates: list[GateResult] = []
        self.error: str | None = None
        self.inflight = 0
        self.memory_mb: float | None = None
        self.load_s: float | None = None
        self.load_thread: Future[None] | None = None  # a candidate's load, which may outlive an abort
        self.created = time.time()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{function.name}-{role}")
        self.batcher = DynamicBatcher(
            function.infer,
            self.executor,
            max_batch_size=batching.max_batch_size,
            max_delay_ms=batching.max_delay_ms,
            max_queue=batching.max_queue,
            observe_batch=observe_batch,
        )
        self.released = False
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def bound(self) -> Iterator[Slot]:
        """Count one request as in flight on this slot for the duration of the block."""
        self.inflight += 1
        self._idle.clear()
        try:
            yield self
        finally:
            self.inflight -= 1
            if self.inflight == 0:
                self._idle.set()

    async def release(self, timeout_s: float) -> None:
        """Wait (bounded) for in-flight requests to finish, then free the thread, batcher and model."""
        if self.released:
            return
        self.released = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        if self.inflight:
            log.warning(
                "releasing %s %s with %d requests still in flight", self.function.name, self.version, self.inflight
            )
        if self.state is SlotState.RETIRING:
            self.state = SlotState.RETIRED
        await self.batcher.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.function.close)
        self.function = _Released(self.function.name)  # type: ignore[assignment]

    def describe(self) -> SlotDocument:
        return SlotDocument(
            version=self.version,
            digest=self.digest,
            source=self.source,
            state=self.state,
            inflight=self.inflight,
            queued=self.batcher.depth,
            load_s=self.load_s,
            memory_mb=self.memory_mb,
            error=self.error,
            released=self.released,
            gates=[GateDocument.model_validate(g.to_json()) for g in self.gates],
        )


class _Released:
    """What a released slot keeps instead of its model: only the name."""

    def __init__(self, name: str) -> None:
        self.name = name


class CanarySplit:
    """Deterministic percentage split: ``take()`` is True for ``percent`` of calls, evenly spaced."""

    def __init__(self) -> None:
        self.percent = 0.0
        self._credit = 0.0

    def set(self, percent: float) -> None:
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"canary percent must be within 0..100, got {percent}")
        self.percent = percent
        self._credit = 0.0

    def take(self) -> bool:
        if self.percent <= 0.0:
            return False
        self._credit += self.percent
        if self._credit >= 100.0:
            self._credit -= 100.0
            return True
        return False


@dataclass
class VersionCounts:
    requests: int = 0
    errors: int = 0


@dataclass
class VersionStats:
    """Per-version counters and the most recent request latencies, readable incrementally by sequence number.

    A reader (the rollout controller) asks for samples after the last sequence number it saw; the buffer is
    bounded, so a reader that falls behind by more than ``capacity`` samples misses the oldest ones.
    """

    capacity: int = 8192
    counts: dict[str, VersionCounts] = field(default_factory=dict)
    _samples: deque[Sample] = field(default_factory=deque)
    _seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    last: int = 0

    def record(self, version: str, latency_s: float, ok: bool) -> None:
        counts = self.counts.setdefault(version, VersionCounts())
        counts.requests += 1
        counts.errors += 0 if ok else 1
        self.last = next(self._seq)
        self._samples.append((self.last, version, latency_s, ok))
        if len(self._samples) > self.capacity:
            self._samples.popleft()

    def since(self, after: int, limit: int = 8192) -> list[Sample]:
        out = [(seq, v, round(lat, 6), ok) for seq, v, lat, ok in self._samples if seq > after]
        return out[:limit]

    def versions(self) -> dict[str, VersionCountsDocument]:
        return {v: VersionCountsDocument(requests=c.requests, errors=c.errors) for v, c in self.counts.items()}
