"""Kafka records made by the CloudEvents Python SDK (1.x), on the real broker, answered by a real replica."""

from __future__ import annotations

import uuid

import numpy as np
import orjson
import pytest
from cloudevents import kafka as sdk_kafka
from cloudevents.http import CloudEvent as SdkEvent
from kafka import KafkaProducer

from events import contract
from tests.integration.async_support import Collector, texts_payload

pytestmark = pytest.mark.integration


def put_payload(stack, body: bytes) -> str:  # type: ignore[no-untyped-def]
    key = f"sdk/{uuid.uuid4().hex}.json"
    stack.client().put_object(Bucket=stack.settings.payload_buckets, Key=key, Body=body)
    return f"s3://{stack.settings.payload_buckets}/{key}"


def sdk_request(dataref: str, partitionkey: str) -> SdkEvent:
    # The SDK's Kafka binary encoder needs a datacontenttype even when there is no data.
    return SdkEvent(
        {
            "type": contract.REQUEST_TYPE,
            "source": "/sdk-producer",
            "model": "embedder",
            "dataref": dataref,
            "partitionkey": partitionkey,
            "datacontenttype": "application/json",
        }
    )


def produce_sdk(producer: KafkaProducer, topic: str, message: sdk_kafka.KafkaMessage) -> None:
    key = message.key.encode() if isinstance(message.key, str) else message.key
    producer.send(topic, key=key, value=message.value, headers=list(message.headers.items())).get(30)


def test_sdk_records_with_a_dataref_get_correct_results(event_stack, producer, embedder):
    texts = {"binary": ["made by the sdk, binary"], "structured": ["made by the sdk", "structured, two rows"]}
    events = {mode: sdk_request(put_payload(event_stack, texts_payload(t)), f"sdk-{mode}") for mode, t in texts.items()}
    missing = sdk_request(f"s3://{event_stack.settings.payload_buckets}/sdk/absent.json", "sdk-missing")
    topic = event_stack.settings.topics.requests("embedder")
    collector = Collector(event_stack.settings, event_stack.settings.results_topic)
    try:
        produce_sdk(producer, topic, sdk_kafka.to_binary(events["binary"]))
        produce_sdk(producer, topic, sdk_kafka.to_structured(events["structured"]))
        produce_sdk(producer, topic, sdk_kafka.to_structured(missing))
        ids = {e["id"]: mode for mode, e in events.items()}
        replies = collector.wait_for({*ids, missing["id"]})
    finally:
        collector.close()
    for request_id, mode in ids.items():
        (reply,) = replies[request_id]
        assert reply.type == contract.RESULT_TYPE, reply.data
        assert (reply.get("model"), reply.get("partitionkey")) == ("embedder", f"sdk-{mode}")
        if reply.get("dataref"):
            bucket, _, key = reply.get("dataref", "").removeprefix("s3://").partition("/")
            data = orjson.loads(event_stack.client().get_object(Bucket=bucket, Key=key)["Body"].read())
        else:
            data = orjson.loads(reply.data)
        (embedding,) = data["outputs"]
        assert embedding["shape"] == [len(texts[mode]), 384]
        vectors = np.array(embedding["data"], np.float32).reshape(-1, 384)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    (error,) = replies[missing["id"]]
    assert error.type == contract.ERROR_TYPE and orjson.loads(error.data or b"{}")["code"] == "payload_not_found"
