"""What ``wakeserve post`` and ``wakeserve results`` do: claim-check upload, posting, following results."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from kafka import KafkaConsumer, TopicPartition

from core.errors import WakeserveError
from core.s3 import S3Uri, make_s3_client
from events import cloudevent, contract
from events.cloudevent import CloudEvent
from events.kafka import make_producer, send
from events.settings import EventSettings

# A command run by hand says the broker is unreachable after this long, not after kafka-python's 30 s.
BOOTSTRAP_TIMEOUT_MS = 10_000


class IngressRejectedError(WakeserveError):
    """The ingress answered, but did not accept the event."""

    status = 502
    code = "ingress_rejected"


def text_request(texts: list[str]) -> bytes:
    """A v2 inference request for the text functions."""
    return orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]})


def build_event(
    function: str, *, dataref: str | None = None, data: bytes | None = None, source: str = "/cli", **extensions: str
) -> CloudEvent:
    attributes = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": contract.REQUEST_TYPE,
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "model": function,
        **extensions,
    }
    if dataref is not None:
        attributes["dataref"] = dataref
    else:
        attributes["datacontenttype"] = "application/json"
    return CloudEvent(attributes, data)


def upload_payload(settings: EventSettings, payload: bytes, request_id: str) -> str:
    """Put the payload in the first allowed payload bucket; returns its s3:// URI."""
    bucket = sorted(settings.allowed_buckets)[0]
    key = f"requests/{request_id}.json"
    make_s3_client(settings.s3_endpoint).put_object(
        Bucket=bucket, Key=key, Body=payload, ContentType="application/json"
    )
    return str(S3Uri(bucket, key))


def post_http(url: str, event: CloudEvent, token: str | None = None) -> dict[str, Any]:
    headers, body = cloudevent.to_http(event)
    if token:
        headers["authorization"] = f"Bearer {token}"
    response = httpx.post(url, content=body, headers=headers, timeout=30)
    if response.status_code != 202:
        raise IngressRejectedError(f"the ingress at {url} answered {response.status_code}: {_reason(response)}")
    return dict(response.json())


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:200]


def post_kafka(settings: EventSettings, event: CloudEvent) -> None:
    producer = make_producer(settings, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    try:
        asyncio.run(send(producer, settings.topics.requests(event.attributes["model"]), event))
    finally:
        producer.close(timeout=10)


def results_consumer(settings: EventSettings, from_beginning: bool) -> KafkaConsumer:
    """A group-less reader of the results topic, positioned before anything this caller posts next."""
    from events.kafka import make_consumer

    consumer = make_consumer(
        settings,
        None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
    )
    topic = settings.topics.results
    deadline = time.monotonic() + 30
    while not (partitions := consumer.partitions_for_topic(topic)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assigned = [TopicPartition(topic, p) for p in sorted(partitions or [])]
    consumer.assign(assigned)
    if not from_beginning:
        # Resolve the start now, before posting. Against tansu, whose ListOffsets(latest) can lag, a few
        # older results may show up too; callers match on requestid.
        for tp in assigned:
            consumer.position(tp)
    return consumer


def follow(consumer: KafkaConsumer, timeout: float | None) -> Iterator[CloudEvent]:
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            for record in records:
                yield cloudevent.from_kafka(record.headers or [], record.key, record.value)


def resolve_result(settings: EventSettings, event: CloudEvent) -> Any:
    """The result's data, fetched from S3 when it is referenced by ``dataref``."""
    ref = event.get("dataref")
    if ref:
        uri = S3Uri.parse(ref)
        body = make_s3_client(settings.s3_endpoint).get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()
        return orjson.loads(body)
    return orjson.loads(event.data) if event.data else None


def describe(settings: EventSettings, event: CloudEvent) -> dict[str, Any]:
    doc = cloudevent.to_structured(event)
    if event.get("dataref"):
        doc["data"] = resolve_result(settings, event)
    return doc
