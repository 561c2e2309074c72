"""The Kafka side of the asynchronous path: consume request events, publish replies, commit at-least-once.

All kafka-python consumer calls run on one dedicated thread; the processing runs on the event loop. An offset
is committed only after the reply (and, for failures, the dead letter) was acknowledged by the broker, and
only up to the lowest offset still in flight on its partition. In-flight work is bounded (partitions are
paused while full). Records with the same key on a partition are processed in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from events import contract
from events.cloudevent import to_kafka
from events.offsets import OffsetTracker
from events.processor import EventProcessor, Outcome

log = logging.getLogger(__name__)


def _commit_request(offsets: dict[tuple[str, int], int]) -> dict[TopicPartition, OffsetAndMetadata]:
    return {TopicPartition(t, p): OffsetAndMetadata(o, None, -1) for (t, p), o in offsets.items()}


class _Rebalance(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what is finished before partitions move to another member.

    kafka-python 3 runs rebalance listeners on its IO thread, where the blocking ``commit()`` is refused, so
    the listener is async and awaits the coordinator's async commit, as kafka-python's own auto-commit on
    rebalance does. If that commit fails, the finished records are redelivered (at-least-once holds).
    """

    def __init__(self, owner: EventConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        offsets = self.owner.tracker.committable()
        if offsets:
            coordinator = self.owner.consumer._coordinator
            try:
                await coordinator._commit_offsets_sync_async(_commit_request(offsets))
                self.owner.tracker.mark_committed(offsets)
            except Exception as exc:  # noqa: BLE001 - the new owner will see these records again
                log.warning("commit before rebalance failed (records will be redelivered): %s", exc)
        self.owner.tracker.forget([(tp.topic, tp.partition) for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))


class EventConsumer:
    """Consumer group ``<prefix>-F`` on ``<prefix>.F.requests`` feeding an :class:`EventProcessor`."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        processor: EventProcessor,
        topics: contract.Topics,
        *,
        max_in_flight: int,
        commit_interval: float = 0.2,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.processor = processor
        self.topics = topics
        self.max_in_flight = max_in_flight
        self.commit_interval = commit_interval
        self.tracker = OffsetTracker()
        self._kafka = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")
        self._tasks: set[asyncio.Task[None]] = set()
        self._by_key: dict[tuple[str, int, bytes], asyncio.Task[None]] = {}
        self._failure: BaseException | None = None
        self.processed = 0

    async def _k(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._kafka, lambda: fn(*args, **kwargs))

    def _commit_now(self) -> None:
        offsets = self.tracker.committable()
        if not offsets:
            return
        self.consumer.commit(_commit_request(offsets))
        self.tracker.mark_committed(offsets)

    async def subscribe(self, function: str) -> None:
        await self._k(self.consumer.subscribe, [self.topics.requests(function)], listener=_Rebalance(self))

    async def run(self, stop: asyncio.Event, drain_timeout: float = 30.0) -> None:
        """Consume until ``stop`` is set, then finish in-flight work, commit, and leave the group."""
        paused = False
        last_commit = last_poll = time.monotonic()
        try:
            while not stop.is_set():
                if self._failure is not None:
                    raise self._failure
                room = self.max_in_flight - self.tracker.in_flight
                if room <= 0 and not paused:
                    await self._k(lambda: self.consumer.pause(*self.consumer.assignment()))
                    paused = True
                elif room > 0 and paused:
                    await self._k(lambda: self.consumer.resume(*self.consumer.paused()))
                    paused = False
                if paused:
                    # Full: wait for acknowledgements to free room instead of blocking in poll().
                    await asyncio.sleep(0.005)
                    if time.monotonic() - last_poll > 0.5:
                        await self._k(self.consumer.poll, timeout_ms=0)
                        last_poll = time.monotonic()
                else:
                    batches = await self._k(self.consumer.poll, timeout_ms=50, max_records=room)
                    last_poll = time.monotonic()
                    for tp, records in batches.items():
                        for record in records:
                            self._start(tp, record)
                now = time.monotonic()
                if now - last_commit >= self.commit_interval:
                    await self._k(self._commit_now)
                    last_commit = now
        finally:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=drain_timeout)
            await asyncio.get_running_loop().run_in_executor(None, lambda: self.producer.flush(drain_timeout))
            with contextlib.suppress(Exception):
                await self._k(self._commit_now)
            await self._k(self.consumer.close)
            self._kafka.shutdown(wait=True)

    def _start(self, tp: TopicPartition, record: Any) -> None:
        self.tracker.started(tp.topic, tp.partition, record.offset)
        previous = None
        if record.key is not None:
            chain = (tp.topic, tp.partition, record.key)
            previous = self._by_key.get(chain)
        task = asyncio.get_running_loop().create_task(self._handle(tp, record, previous))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if record.key is not None:
            self._by_key[chain] = task
            task.add_done_callback(lambda t: self._forget_key(chain, t))

    def _forget_key(self, chain: tuple[str, int, bytes], task: asyncio.Task[None]) -> None:
        if self._by_key.get(chain) is task:
            del self._by_key[chain]

    async def _handle(self, tp: TopicPartition, record: Any, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(BaseException):
                await previous
        headers = [(k, v or b"") for k, v in (record.headers or [])]
        outcome = await self.processor.process_record(headers, record.key, record.value)
        try:
            self._publish(tp, outcome, headers, record)
        except Exception as exc:  # noqa: BLE001 - the consumer stops; the record is redelivered
            self._fail(tp, record, exc)

    def _fail(self, tp: TopicPartition, record: Any, exc: BaseException) -> None:
        log.error("could not publish the reply to offset %d of %s: %s", record.offset, tp, exc)
        self._failure = exc

    def _publish(self, tp: TopicPartition, outcome: Outcome, headers: list[tuple[str, bytes]], record: Any) -> None:
        """Queue the reply (and dead letter); the record counts as done when the broker acknowledged them.

        Sends are queued in processing order, so replies for one key keep their order (idempotent producer).
        Acknowledgements arrive on the producer's I/O thread and go straight to the offset tracker, without a
        round trip through the event loop per record.
        """
        sends = [(self.topics.results, *to_kafka(outcome.reply))]
        if outcome.error is not None:
            dead = contract.dead_letter_headers(headers, outcome.error)
            sends.append((self.topics.deadletter, dead, record.key, record.value))
        remaining = [len(sends)]
        lock = threading.Lock()

        def acked(_: Any) -> None:
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                self.tracker.finished(tp.topic, tp.partition, record.offset)
                self.processed += 1

        for topic, kafka_headers, key, value in sends:
            if key is None and value is None:
                value = b""
            future = self.producer.send(topic, key=key, value=value, headers=kafka_headers)
            future.add_callback(acked)
            future.add_errback(lambda exc: self._fail(tp, record, exc))
