"""Kafka clients configured for the contract: idempotent acks=all producers, manual-commit consumers.

Two client libraries: the replica's (and dispatcher's) consumer and reply producer use librdkafka
(confluent-kafka), whose fetching, batching and record encoding run in native threads outside the GIL, so the
event work keeps the interpreter; the ingress, the CLI, the scaler and the tests use kafka-python.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from events.cloudevent import CloudEvent, to_kafka
from events.settings import EventSettings

log = logging.getLogger(__name__)


def make_producer(settings: EventSettings, **overrides: Any) -> KafkaProducer:
    config: dict[str, Any] = {
        **settings.kafka_config(),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "reconnect_backoff_max_ms": 2_000,
        "request_timeout_ms": 15_000,
        "max_in_flight_requests_per_connection": 5,
        **overrides,
    }
    return KafkaProducer(**config)


def make_consumer(settings: EventSettings, group: str | None, *topics: str, **overrides: Any) -> KafkaConsumer:
    session = settings.kafka_session_timeout_ms
    config: dict[str, Any] = {
        **settings.kafka_config(),
        "group_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": session,
        "heartbeat_interval_ms": max(100, session // 5),
        "max_poll_records": 200,
        "max_poll_interval_ms": 300_000,
        **overrides,
    }
    return KafkaConsumer(*topics, **config)


RDKAFKA_LOG = logging.getLogger("events.rdkafka")


def make_rd_producer(settings: EventSettings) -> Any:
    """An idempotent acks=all librdkafka producer; delivery reports are served by whoever calls ``poll``."""
    from confluent_kafka import Producer

    config: dict[str, Any] = {
        **settings.rdkafka_config(),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 2,
        "message.timeout.ms": 120_000,
        "partitioner": "murmur2_random",  # the Java (and kafka-python) choice of partition for a key
        "queue.buffering.max.messages": 20_000,
        "reconnect.backoff.max.ms": 2_000,
        "logger": RDKAFKA_LOG,
    }
    return Producer(config)


def make_rd_consumer(settings: EventSettings, group: str) -> Any:
    """A manual-commit librdkafka group consumer with a bounded prefetch."""
    from confluent_kafka import Consumer

    session = settings.kafka_session_timeout_ms
    config: dict[str, Any] = {
        **settings.rdkafka_config(),
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": session,
        "heartbeat.interval.ms": max(100, session // 5),
        "max.poll.interval.ms": 300_000,
        "queued.max.messages.kbytes": 8_192,
        "queued.min.messages": 1,
        "fetch.queue.backoff.ms": 10,
        "fetch.wait.max.ms": settings.kafka_fetch_max_wait_ms,
        "topic.metadata.refresh.interval.ms": 10_000,
        "reconnect.backoff.max.ms": 2_000,
        "logger": RDKAFKA_LOG,
    }
    return Consumer(config)


def ensure_topics(settings: EventSettings, names: Iterable[str], partitions: int = 4) -> None:
    """Create topics that do not exist yet (idempotent)."""
    admin = KafkaAdminClient(**settings.kafka_config())
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
    finally:
        admin.close()


async def send(producer: KafkaProducer, topic: str, event: CloudEvent, timeout: float = 30.0) -> None:
    """Produce an event in binary mode and wait until the broker acknowledged it (acks=all)."""
    headers, key, value = to_kafka(event)
    await send_raw(producer, topic, headers, key, value, timeout)


async def send_raw(
    producer: KafkaProducer,
    topic: str,
    headers: list[tuple[str, bytes]],
    key: bytes | None,
    value: bytes | None,
    timeout: float = 30.0,
) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)

    def ok(_: Any) -> None:
        loop.call_soon_threadsafe(settle, None)

    def failed(exc: BaseException) -> None:
        loop.call_soon_threadsafe(settle, exc)

    if key is None and value is None:
        value = b""  # a dataref event has no data; Kafka needs a key or a value
    future = producer.send(topic, key=key, value=value, headers=headers)
    future.add_callback(ok)
    future.add_errback(failed)
    await asyncio.wait_for(done, timeout)
