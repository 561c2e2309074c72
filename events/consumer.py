"""The Kafka side of the asynchronous path: consume request events, publish replies, commit at-least-once.

The consumer and the reply producer are librdkafka clients (confluent-kafka): fetching, record decoding,
batching and encoding run in librdkafka's native threads, outside the GIL. All consumer calls run on one
dedicated thread (rebalance callbacks run there too, inside ``consume``); the processing runs on the event
loop; delivery reports are served by a thread of their own. An offset is committed only after the reply (and,
for failures, the dead letter) was acknowledged by the broker, and only up to the lowest offset still in
flight on its partition. In-flight work is bounded (partitions are paused while full). Records with the same
key on a partition are processed in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from events import contract
from events.cloudevent import to_kafka
from events.offsets import OffsetTracker
from events.processor import EventProcessor, Outcome

log = logging.getLogger(__name__)

# How long the consumer thread blocks waiting for the first record when nothing is buffered.
FETCH_WAIT_S = 0.05
# After this long full, the consumer pauses its partitions and still serves the group (rebalance callbacks).
PAUSED_POLL_S = 0.5
# A full local produce queue is retried this often before the reply counts as failed.
PRODUCE_RETRIES = 2_000
# While full, the event loop sleeps until this share of max_in_flight is free again (woken by the
# acknowledgements thread), or this long at most, so a stop or a failure is still seen promptly.
ROOM_SHARE = 8
FULL_WAIT_S = 0.05


@dataclass(frozen=True)
class Record:
    """What the processing needs of a consumed record (read once from the native message)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @classmethod
    def of(cls, message: Any) -> Record:
        headers = [(k, v or b"") for k, v in (message.headers() or [])]
        return cls(message.topic(), message.partition(), message.offset(), message.key(), message.value(), headers)


class EventConsumer:
    """Consumer group ``<prefix>-F`` on ``<prefix>.F.requests`` feeding an :class:`EventProcessor`."""

    def __init__(
        self,
        consumer: Any,
        producer: Any,
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
        self._stop_acks = threading.Event()
        self._room = asyncio.Event()
        self._room_wanted = 0  # free slots the loop waits for; 0: nobody waits
        self._loop: asyncio.AbstractEventLoop | None = None
        self.processed = 0

    async def _k(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._kafka, lambda: fn(*args, **kwargs))

    # -- consumer thread ---------------------------------------------------------------------------------------

    def _commit_now(self) -> None:
        """Commit what is finished; a refused commit is retried at the next interval (records may repeat)."""
        offsets = self.tracker.committable()
        if not offsets:
            return
        request = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            answered = self.consumer.commit(offsets=request, asynchronous=False)
        except KafkaException as exc:
            log.warning("offset commit refused, will retry: %s", exc)
            return
        done = {(tp.topic, tp.partition): tp.offset for tp in answered or request if tp.error is None}
        self.tracker.mark_committed({tp: o for tp, o in offsets.items() if done.get(tp) == o})

    def _revoked(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        """Commit what is finished before partitions move to another member; forget their records."""
        log.info("revoked %s", sorted((tp.topic, tp.partition) for tp in partitions))
        self._commit_now()
        self.tracker.forget([(tp.topic, tp.partition) for tp in partitions])

    def _lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        log.warning("partitions lost without a clean revoke: %s", sorted((p.topic, p.partition) for p in partitions))
        self.tracker.forget([(tp.topic, tp.partition) for tp in partitions])

    def _assigned(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in partitions))

    def _fetch(self, room: int) -> list[Record]:
        """Up to ``room`` records: whatever is buffered now, else wait briefly for the first one."""
        messages = self.consumer.consume(room, 0)
        if not messages:
            messages = self.consumer.consume(1, FETCH_WAIT_S)
            if messages and room > 1:
                messages += self.consumer.consume(room - 1, 0)
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(Record.of(message))
            elif error.fatal():
                raise KafkaException(error)
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer: %s", error)
        return records

    def _pause(self, full: bool) -> None:
        assignment = self.consumer.assignment()
        if assignment:
            (self.consumer.pause if full else self.consumer.resume)(assignment)

    # -- acknowledgements thread -------------------------------------------------------------------------------

    def _serve_acks(self) -> None:
        while not self._stop_acks.is_set():
            self.producer.poll(0.05)

    # -- event loop --------------------------------------------------------------------------------------------

    async def subscribe(self, function: str) -> None:
        await self._k(
            self.consumer.subscribe,
            [self.topics.requests(function)],
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._lost,
        )

    async def run(self, stop: asyncio.Event, drain_timeout: float = 30.0) -> None:
        """Consume until ``stop`` is set, then finish in-flight work, commit, and leave the group."""
        self._loop = asyncio.get_running_loop()
        acks = threading.Thread(target=self._serve_acks, name="kafka-acks", daemon=True)
        acks.start()
        paused = False
        last_commit = full_since = time.monotonic()
        try:
            while not stop.is_set():
                if self._failure is not None:
                    raise self._failure
                room = self.max_in_flight - self.tracker.in_flight
                if room > 0:
                    if paused:
                        await self._k(self._pause, False)
                        paused = False
                    self._start_all(await self._k(self._fetch, room))
                    full_since = time.monotonic()
                else:
                    # Full: wait for acknowledgements to free room. librdkafka's prefetch queue is bounded, so a
                    # short full spell needs no pause (a pause drops the prefetched records, and pausing at every
                    # full moment cut echo to ~300 events/s); a long one pauses and still serves the group.
                    await self._wait_for_room()
                    if time.monotonic() - full_since > PAUSED_POLL_S:
                        if not paused:
                            await self._k(self._pause, True)
                            paused = True
                        self._start_all(await self._k(self._fetch, 1))
                        full_since = time.monotonic()
                now = time.monotonic()
                if now - last_commit >= self.commit_interval:
                    await self._k(self._commit_now)
                    last_commit = now
        finally:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=drain_timeout)
            await asyncio.get_running_loop().run_in_executor(None, lambda: self.producer.flush(drain_timeout))
            self._stop_acks.set()
            acks.join(timeout=5)
            with contextlib.suppress(Exception):
                await self._k(self._commit_now)
            await self._k(self.consumer.close)
            self._kafka.shutdown(wait=True)

    async def _wait_for_room(self) -> None:
        """Sleep until an eighth of the in-flight bound is free (woken from the acknowledgements thread, not
        polled), or ``FULL_WAIT_S`` at most."""
        self._room.clear()
        self._room_wanted = max(1, self.max_in_flight // ROOM_SHARE)
        try:
            if self.max_in_flight - self.tracker.in_flight < self._room_wanted:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), FULL_WAIT_S)
        finally:
            self._room_wanted = 0

    def _room_freed(self) -> None:
        """Acknowledgements thread: wake the event loop if it waits for room and there is enough now."""
        wanted, loop = self._room_wanted, self._loop
        if wanted and loop is not None and self.max_in_flight - self.tracker.in_flight >= wanted:
            self._room_wanted = 0
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
                loop.call_soon_threadsafe(self._room.set)

    def _start_all(self, records: list[Record]) -> None:
        if records:
            self.tracker.started_many([(r.topic, r.partition, r.offset) for r in records])
            for record in records:
                self._start(record)

    def _start(self, record: Record) -> None:
        """Process the (tracked) record after any earlier record with the same key on its partition."""
        previous = None
        if record.key is not None:
            chain = (record.topic, record.partition, record.key)
            previous = self._by_key.get(chain)
        task = asyncio.get_running_loop().create_task(self._handle(record, previous))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if record.key is not None:
            self._by_key[chain] = task
            task.add_done_callback(lambda t: self._forget_key(chain, t))

    def _forget_key(self, chain: tuple[str, int, bytes], task: asyncio.Task[None]) -> None:
        if self._by_key.get(chain) is task:
            del self._by_key[chain]

    async def _handle(self, record: Record, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(BaseException):
                await previous
        outcome = await self.processor.process_record(record.headers, record.key, record.value)
        try:
            self._publish(outcome, record)
        except Exception as exc:  # noqa: BLE001 - the consumer stops; the record is redelivered
            self._fail(record, exc)

    def _fail(self, record: Record, exc: BaseException) -> None:
        log.error(
            "could not publish the reply to offset %d of %s[%d]: %s", record.offset, record.topic, record.partition, exc
        )
        self._failure = exc

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, headers: Any, on_delivery: Any) -> None:
        for _ in range(PRODUCE_RETRIES):
            try:
                self.producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                time.sleep(0.001)  # the local queue is full (bounded); the acks thread is draining it
        raise BufferError(f"the producer's local queue stayed full for {PRODUCE_RETRIES} ms")

    def _publish(self, outcome: Outcome, record: Record) -> None:
        """Queue the reply (and dead letter); the record counts as done when the broker acknowledged them.

        Sends are queued in processing order, so replies for one key keep their order (idempotent producer).
        Delivery reports arrive on the acknowledgements thread and go straight to the offset tracker, without a
        round trip through the event loop per record.
        """
        headers, key, value = to_kafka(outcome.reply)
        sends = [(self.topics.results, headers, key, value)]
        if outcome.error is not None:
            dead = contract.dead_letter_headers(record.headers, outcome.error)
            sends.append((self.topics.deadletter, dead, record.key, record.value))
        remaining = [len(sends)]
        lock = threading.Lock()

        def delivered(error: KafkaError | None, _message: Any) -> None:
            if error is not None:
                self._fail(record, KafkaException(error))
                return
            with lock:
                remaining[0] -= 1
                if remaining[0]:
                    return
            self.tracker.finished(record.topic, record.partition, record.offset)
            self.processed += 1
            self._room_freed()

        for topic, kafka_headers, key, value in sends:
            if key is None and value is None:
                value = b""
            self._produce(topic, key, value, kafka_headers, delivered)
