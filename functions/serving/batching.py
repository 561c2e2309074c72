"""Dynamic batching: merge concurrent requests along the batch dimension, run once, split back.

One worker task owns the model, so batches run one at a time on a dedicated thread while the event loop keeps
accepting requests; whatever arrives during a run forms the next batch. When the next batch is ready as one
finishes, it is started first and the finished batch's results are handed over once it runs (after at most
``START_WAIT_S``): otherwise the callers' work on their results would hold the GIL and keep the model waiting.
The queue is bounded: a full queue answers :class:`OverloadedError` (503) at once rather than growing without
limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from core.errors import ModelError, OverloadedError, WakeserveError
from functions.contract import Tensors

SYNC = 0  # synchronous HTTP/gRPC calls, and events that ask for priority "high"
EVENT = 1  # events at normal priority
BACKGROUND = 2  # events at priority "low"
# How long a finished batch's results wait for the next batch to start on the model thread, at most.
START_WAIT_S = 0.005


@dataclass
class _Pending:
    inputs: Tensors
    rows: int
    future: asyncio.Future[Tensors]
    priority: int = SYNC
    enqueued: float = field(default_factory=time.monotonic)


def batch_rows(inputs: Tensors) -> int:
    return int(next(iter(inputs.values())).shape[0])


def _compatible(a: Tensors, b: Tensors) -> bool:
    return all(a[k].shape[1:] == b[k].shape[1:] and a[k].dtype == b[k].dtype for k in a)


def merge(parts: list[Tensors]) -> Tensors:
    return {name: np.concatenate([p[name] for p in parts], axis=0) for name in parts[0]}


def split(outputs: Tensors, sizes: list[int]) -> list[Tensors]:
    total = sum(sizes)
    for name, array in outputs.items():
        if array.shape[0] != total:
            raise ModelError(f"output '{name}' has batch size {array.shape[0]}, expected {total}")
    result, offset = [], 0
    for size in sizes:
        result.append({name: array[offset : offset + size] for name, array in outputs.items()})
        offset += size
    return result


class DynamicBatcher:
    """Bounded request queue in front of a batched ``run`` function executed off the event loop.

    Requests carry a priority: synchronous calls are taken before queued events, and while synchronous
    traffic is present a batch carries ``event_share`` of its rows as events: never more, so an event batch
    never holds the model for long in front of a waiting call, and never less while events wait, so a
    steady stream of calls cannot starve them.
    """

    def __init__(
        self,
        run: Callable[[Tensors], Tensors],
        executor: Executor,
        *,
        max_batch_size: int,
        max_delay_ms: float,
        max_queue: int,
        observe_batch: Callable[[int], None] | None = None,
        event_share: float = 0.125,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_delay_ms < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1 and max_delay_ms >= 0")
        self._run = run
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay_ms / 1000.0
        self.max_queue = max_queue
        self._observe_batch = observe_batch
        self.event_rows_when_busy = max(1, int(max_batch_size * event_share))
        self._queues: tuple[deque[_Pending], ...] = (deque(), deque(), deque())
        self._last_sync = float("-inf")
        self._arrived = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._running = 0
        self._undelivered: list[tuple[_Pending, Tensors]] = []  # computed, handed over once the next batch runs

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues)

    @property
    def running(self) -> bool:
        """A batch is on the model now."""
        return self._running > 0

    @property
    def depth(self) -> int:
        """Requests waiting plus requests in the batch now running."""
        return self.waiting + self._running

    async def wait_idle(self, timeout_s: float) -> bool:
        """Until nothing waits or runs (True), or ``timeout_s`` passes (False); woken, not polled."""
        if not self.depth:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def submit(self, inputs: Tensors, priority: int = SYNC) -> Tensors:
        if self.waiting >= self.max_queue:
            raise OverloadedError(f"request queue is full ({self.max_queue} waiting); retry after a short backoff")
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())
        priority = min(max(priority, SYNC), BACKGROUND)
        pending = _Pending(inputs, batch_rows(inputs), asyncio.get_running_loop().create_future(), priority)
        if priority == SYNC:
            self._last_sync = pending.enqueued
        self._queues[priority].append(pending)
        self._idle.clear()
        self._arrived.set()
        return await pending.future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        for queue in self._queues:
            while queue:
                pending = queue.popleft()
                if not pending.future.done():
                    pending.future.set_exception(OverloadedError("server is shutting down"))

    async def _work(self) -> None:
        try:
            while True:
                if not self.waiting:
                    self._deliver()
                    while not self.waiting:
                        self._idle.set()
                        self._arrived.clear()
                        await self._arrived.wait()
                if self.max_delay > 0 and self._rows_waiting() < self.max_batch_size:
                    self._deliver()  # the next batch may wait for more rows: nobody waits for results meanwhile
                await self._fill_or_timeout()
                items = self._take()
                if items:
                    await self._run_items(items)
                else:
                    self._deliver()
        finally:
            self._deliver()

    def _rows_waiting(self) -> int:
        return sum(p.rows for q in self._queues for p in q)

    def _deliver(self) -> None:
        """Hand computed results to their callers."""
        done, self._undelivered = self._undelivered, []
        for item, part in done:
            if not item.future.done():
                item.future.set_result(part)

    async def _fill_or_timeout(self) -> None:
        deadline = min(q[0].enqueued for q in self._queues if q) + self.max_delay
        while self._rows_waiting() < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Pending]:
        """Sync requests first; events fill the rest, limited to a share of the batch while sync is busy.

        Events always get their share (``event_rows_when_busy`` rows) of every batch, even when sync calls
        would fill it, so a steady stream of calls never starves them.
        """
        sync_active = time.monotonic() - self._last_sync < 1.0
        event_budget = self.event_rows_when_busy if sync_active else self.max_batch_size
        waiting_events = sum(p.rows for q in self._queues[1:] for p in q)
        reserved = min(event_budget, waiting_events)
        items: list[_Pending] = []
        rows = 0
        for level, queue in enumerate(self._queues):
            limit = self.max_batch_size - reserved if level == SYNC else min(self.max_batch_size, rows + event_budget)
            while queue:
                head = queue[0]
                if head.future.done():  # the caller went away; nothing to compute
                    queue.popleft()
                    continue
                too_many = rows + head.rows > limit
                if items and (too_many or not _compatible(items[0].inputs, head.inputs)):
                    break
                items.append(queue.popleft())
                rows += head.rows
                if level != SYNC:
                    event_budget -= head.rows
        return items

    async def _run_items(self, items: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        self._running = len(items)
        try:
            merged = items[0].inputs if len(items) == 1 else merge([p.inputs for p in items])
            started = loop.create_future()
            try:
                running = loop.run_in_executor(self._executor, self._announced, started, merged)
                if self._undelivered:
                    # The previous batch's callers get their results once this batch is on the model thread:
                    # their work (encoding responses) holds the GIL, and the batch would wait for it to start.
                    await asyncio.wait([started], timeout=START_WAIT_S)
                    self._deliver()
                outputs = await running
                parts = split(outputs, [p.rows for p in items])
            except Exception as exc:  # noqa: BLE001 - isolate the failure below
                if len(items) == 1:
                    _fail(items[0], exc)
                    return
                # One bad request must not fail its neighbours: rerun each alone.
                for item in items:
                    await self._run_items([item])
                return
            if self._observe_batch is not None:
                self._observe_batch(sum(p.rows for p in items))
            self._undelivered.extend(zip(items, parts))
        finally:
            self._running = 0

    def _announced(self, started: asyncio.Future[None], merged: Tensors) -> Tensors:
        """Model thread: tell the event loop the batch has started, then run it."""
        with contextlib.suppress(RuntimeError):  # the event loop has closed; nobody waits for the signal
            started.get_loop().call_soon_threadsafe(_set_once, started)
        return self._run(merged)


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(item: _Pending, exc: BaseException) -> None:
    if item.future.done():
        return
    if not isinstance(exc, WakeserveError):
        exc = ModelError(f"model failed: {type(exc).__name__}: {exc}")
    item.future.set_exception(exc)
