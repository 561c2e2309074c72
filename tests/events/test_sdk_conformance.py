"""Our CloudEvents codec against the CloudEvents Python SDK (1.x) as the reference, in both directions.

Every event below is made by the SDK in the HTTP binary, HTTP structured, Kafka binary and Kafka structured
bindings and read by ``events.cloudevent`` with the same attributes and data; and the same event made by our
codec is read back by the SDK. The SDK's own departures from the bindings (a ``null`` body or ``"data": null``
for "no data", Kafka structured records labelled with the data's content type, ``partitionkey`` moved into the
record key) are the leniencies docs/events.md lists.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from cloudevents import conversion as sdk_http
from cloudevents import kafka as sdk_kafka
from cloudevents.http import CloudEvent as SdkEvent
from cloudevents.http import from_http as sdk_from_http

from events import cloudevent, contract
from events.cloudevent import CloudEvent
from tests.events.test_processor import ScriptedInvoker, processor

REQUEST = {"type": contract.REQUEST_TYPE, "source": "/producer", "model": "m"}


@dataclass(frozen=True)
class Case:
    name: str
    attributes: dict[str, str]
    data: Any  # what the SDK event holds: a JSON value, bytes, or None

    def sdk(self) -> SdkEvent:
        return SdkEvent(dict(self.attributes), self.data)

    def is_json(self) -> bool:
        return self.attributes["datacontenttype"].endswith("json")


CASES = [
    Case(
        "json-data-and-extensions",
        {
            **REQUEST,
            "datacontenttype": "application/json",
            "partitionkey": "customer-7",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "priority": "high",
        },
        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["héllo"]}]},
    ),
    Case("json-array", {"type": "t", "source": "/s", "datacontenttype": "application/json"}, [1, 2.5, None]),
    Case(
        "dataref-no-data",
        {**REQUEST, "datacontenttype": "application/json", "dataref": "s3://payloads/req/1.json", "partitionkey": "k"},
        None,
    ),
    Case("octet-stream", {"type": "t", "source": "/s", "datacontenttype": "application/octet-stream"}, b"\x00\xff\x01"),
    Case("text", {"type": "t", "source": "/s", "datacontenttype": "text/plain; charset=utf-8", "lang": "en"}, b"hi"),
]
IDS = [c.name for c in CASES]


def _kafka_data(data: Any) -> Any:
    """The SDK's Kafka binary marshaller: JSON (its default, ``null`` for no data), bytes as they are."""
    return data if isinstance(data, bytes) else json.dumps(data)


def _as_bytes(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


def sdk_http_binary(event: SdkEvent) -> CloudEvent:
    headers, body = sdk_http.to_binary(event)
    (ours,) = cloudevent.from_http(headers, body or b"")
    return ours


def sdk_http_structured(event: SdkEvent) -> CloudEvent:
    headers, body = sdk_http.to_structured(event)
    (ours,) = cloudevent.from_http(headers, body)
    return ours


def sdk_kafka_binary(event: SdkEvent) -> CloudEvent:
    message = sdk_kafka.to_binary(event, data_marshaller=_kafka_data)
    return cloudevent.from_kafka(list(message.headers.items()), _as_bytes(message.key), message.value)


def sdk_kafka_structured(event: SdkEvent) -> CloudEvent:
    message = sdk_kafka.to_structured(event)
    return cloudevent.from_kafka(list(message.headers.items()), _as_bytes(message.key), message.value)


SDK_BINDINGS: dict[str, Callable[[SdkEvent], CloudEvent]] = {
    "http-binary": sdk_http_binary,
    "http-structured": sdk_http_structured,
    "kafka-binary": sdk_kafka_binary,
    "kafka-structured": sdk_kafka_structured,
}


def assert_same_data(case: Case, ours: bytes | None) -> None:
    if case.data is None:
        assert ours is None
    elif case.is_json():
        assert ours is not None and orjson.loads(ours) == case.data
    else:
        assert ours == case.data


@pytest.mark.parametrize("binding", SDK_BINDINGS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sdk_events_are_read_by_our_codec(case: Case, binding: str) -> None:
    sdk = case.sdk()
    ours = SDK_BINDINGS[binding](sdk)
    assert ours.attributes == {k: str(v) for k, v in sdk.get_attributes().items()}
    assert_same_data(case, ours.data)


def ours_of(case: Case) -> CloudEvent:
    """The same event made by our codec (attributes as strings, data as its encoded bytes)."""
    # With a time of its own: the SDK gives an event without one the time it was read.
    attributes = {
        "specversion": "1.0",
        "id": f"ours-{case.name}",
        "time": "2024-05-01T12:00:00.5+00:00",
        **case.attributes,
    }
    data = case.data if case.data is None or isinstance(case.data, bytes) else orjson.dumps(case.data)
    return CloudEvent(attributes, data)


def _json_or_none(value: bytes | None) -> Any:
    return json.loads(value) if value else None


def read_http_binary(event: CloudEvent) -> Any:
    headers, body = cloudevent.to_http(event)
    return sdk_from_http(headers, body)


def read_http_structured(event: CloudEvent) -> Any:
    return sdk_from_http({"content-type": cloudevent.STRUCTURED}, orjson.dumps(cloudevent.to_structured(event)))


def read_kafka_binary(event: CloudEvent) -> Any:
    headers, key, value = cloudevent.to_kafka(event)
    json_data = event.get("datacontenttype", "").endswith("json")  # type: ignore[union-attr]
    # The SDK's default unmarshaller is json.loads, which fails on an absent value; a reader picks its own.
    unmarshaller = _json_or_none if json_data else (lambda v: v)
    return sdk_kafka.from_binary(
        sdk_kafka.KafkaMessage(dict(headers), key, value or b""), data_unmarshaller=unmarshaller
    )


SDK_READERS: dict[str, Callable[[CloudEvent], Any]] = {
    "http-binary": read_http_binary,
    "http-structured": read_http_structured,
    "kafka-binary": read_kafka_binary,
}


@pytest.mark.parametrize("binding", SDK_READERS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_our_events_are_read_by_the_sdk(case: Case, binding: str) -> None:
    ours = ours_of(case)
    sdk = SDK_READERS[binding](ours)
    attributes = {k: v.decode() if isinstance(v, bytes) else v for k, v in sdk.get_attributes().items()}
    assert attributes == ours.attributes
    data = sdk.get_data()
    if case.data is None:
        assert data is None
    else:
        assert data == case.data


@pytest.mark.parametrize("binding", ["kafka-binary", "kafka-structured"])
def test_an_sdk_request_with_a_dataref_gets_a_result_naming_it(binding: str) -> None:
    store_uri = "s3://payloads/req/1.json"
    sdk = SdkEvent({**REQUEST, "datacontenttype": "application/json", "dataref": store_uri, "partitionkey": "k"})
    make = sdk_kafka.to_binary if binding == "kafka-binary" else sdk_kafka.to_structured
    message = make(sdk)
    p = processor(ScriptedInvoker([], response=b'{"outputs": []}'))
    p.payloads.objects[store_uri] = b'{"inputs": []}'  # type: ignore[attr-defined]
    headers = list(message.headers.items())
    outcome = asyncio.run(p.process_record(headers, _as_bytes(message.key), message.value))
    assert outcome.error is None, outcome.reply.data
    assert outcome.reply.type == contract.RESULT_TYPE and outcome.reply.data == b'{"outputs": []}'
    assert (outcome.reply.get("requestid"), outcome.reply.get("partitionkey")) == (sdk["id"], "k")
