"""kafka-python clients configured for the contract: idempotent acks=all producers, manual-commit consumers."""

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
