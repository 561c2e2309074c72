"""Build the event processor and run the Kafka consumer loop, for a replica or a standalone dispatcher."""

from __future__ import annotations

import asyncio
import logging

from core.s3 import make_s3_client
from events.consumer import EventConsumer
from events.invokers import Invoker
from events.kafka import make_rd_consumer, make_rd_producer
from events.payloads import PayloadStore
from events.processor import EventProcessor, RetryPolicy
from events.settings import EventSettings

log = logging.getLogger(__name__)


def build_processor(functions: frozenset[str], invoker: Invoker, settings: EventSettings) -> EventProcessor:
    payloads = PayloadStore(
        make_s3_client(settings.s3_endpoint),
        settings.allowed_buckets,
        settings.max_payload_bytes,
        settings.results_bucket,
    )
    return EventProcessor(
        functions,
        invoker,
        payloads,
        source=settings.event_source,
        inline_result_limit=settings.inline_result_limit,
        retry=RetryPolicy(settings.max_attempts, settings.retry_base_ms, settings.retry_max_ms),
    )


async def consume(function: str, processor: EventProcessor, settings: EventSettings, stop: asyncio.Event) -> None:
    """Join consumer group ``<prefix>-F`` and process until ``stop``; leaves the group cleanly."""
    topics = settings.topics
    loop = asyncio.get_running_loop()
    consumer = await loop.run_in_executor(None, lambda: make_rd_consumer(settings, topics.group(function)))
    producer = await loop.run_in_executor(None, lambda: make_rd_producer(settings))
    runner = EventConsumer(consumer, producer, processor, topics, max_in_flight=settings.max_in_flight)
    try:
        await runner.subscribe(function)
        log.info("consuming %s as group %s", topics.requests(function), topics.group(function))
        await runner.run(stop)
    finally:
        await loop.run_in_executor(None, lambda: producer.flush(10))
