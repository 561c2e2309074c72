"""The ingress app in process, over a stand-in producer: what is written, and every refusal as JSON.

The real broker behind a real ingress process is exercised in tests/integration/test_ingress.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import orjson
import pytest
from kafka import KafkaProducer

from events import cloudevent, contract
from events.cloudevent import CloudEvent
from events.ingress import Ingress, build_app
from events.settings import EventSettings


class Acknowledgement:
    """A send future that the broker acknowledges at once, or never (the broker is down)."""

    def __init__(self, acknowledged: bool) -> None:
        self.acknowledged = acknowledged

    def add_callback(self, fn: Any) -> Acknowledgement:
        if self.acknowledged:
            fn(None)
        return self

    def add_errback(self, fn: Any) -> Acknowledgement:
        return self


@dataclass
class Producer:
    up: bool = True
    sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = field(default_factory=list)

    def send(self, topic: str, *, key: bytes | None, value: bytes | None, headers: Any) -> Acknowledgement:
        self.sent.append((topic, key, value, headers))
        return Acknowledgement(self.up)


def post(producer: Producer, headers: dict[str, str], body: bytes) -> httpx.Response:
    settings = EventSettings(max_inline_event_bytes=200, ingress_ack_timeout_s=0.05)
    ingress = Ingress(cast(KafkaProducer, producer), settings, frozenset({"embedder"}))

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=build_app(ingress))
        async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as client:
            return await client.post("/events", content=body, headers=headers)

    return asyncio.run(go())


def request(model: str = "embedder", data: bytes | None = b'{"inputs": []}', **extra: str) -> CloudEvent:
    attributes = {"specversion": "1.0", "id": "e1", "source": "/t", "type": contract.REQUEST_TYPE, "model": model}
    if data is not None:
        attributes["datacontenttype"] = "application/json"
    return CloudEvent({**attributes, **extra}, data)


def test_an_acknowledged_event_is_answered_202_with_its_id() -> None:
    producer = Producer()
    headers, body = cloudevent.to_http(request(partitionkey="k"))
    response = post(producer, headers, body)
    assert (response.status_code, response.json()) == (202, {"accepted": ["e1"]})
    ((topic, key, value, _),) = producer.sent
    assert (topic, key, value) == ("wakeserve.embedder.requests", b"k", b'{"inputs": []}')


@pytest.mark.parametrize(
    ("event_headers", "body", "status", "code", "says"),
    [
        ({"content-type": "application/json"}, b"{}", 400, "invalid_event", "not a CloudEvent"),
        (None, None, 404, "unknown_model", "no function named 'translator'"),
        (None, b'{"inputs": ["' + b"y" * 300 + b'"]}', 413, "payload_too_large", "send its s3:// URI"),
        ({"content-type": "application/cloudevents+json"}, b"{", 400, "invalid_event", "not valid JSON"),
        ({"content-type": "application/json"}, b"x" * 3201, 413, "payload_too_large", "request body is over 3200"),
    ],
    ids=["not-a-cloudevent", "unknown-model", "inline-too-large", "bad-structured-json", "body-too-large"],
)
def test_refusals_write_nothing_and_answer_json(
    event_headers: dict[str, str] | None, body: bytes | None, status: int, code: str, says: str
) -> None:
    producer = Producer()
    if event_headers is None:
        event_headers, body = cloudevent.to_http(request("translator" if body is None else "embedder", body or b"{}"))
    response = post(producer, event_headers, body or b"")
    assert response.status_code == status, response.text
    assert response.json()["code"] == code and says in response.json()["error"]
    assert producer.sent == []


def test_a_broker_that_does_not_acknowledge_is_answered_503_with_retry_after() -> None:
    headers, body = cloudevent.to_http(request())
    response = post(Producer(up=False), headers, body)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json() == {
        "error": "the broker did not acknowledge the events: TimeoutError",
        "code": "unavailable",
        "retryable": True,
    }


def test_other_routes_answer_json() -> None:
    producer = Producer()
    settings = EventSettings()
    app = build_app(Ingress(cast(KafkaProducer, producer), settings, frozenset({"embedder"})))

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingress") as client:
            return [await client.get("/events"), await client.get("/nowhere")]

    wrong_method, no_route = asyncio.run(go())
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "method_not_allowed")
    assert (no_route.status_code, orjson.loads(no_route.content)["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("dataref", "status"),
    [
        ("s3://wakeserve-payloads/in/e1", 202),
        ("s3://elsewhere/in/e1", 400),
        ("s3://wakeserve-models/classifier/v1", 400),
    ],
    ids=["allowed", "other-bucket", "models-bucket"],
)
def test_a_dataref_outside_the_payload_buckets_is_refused_before_it_is_written(dataref: str, status: int) -> None:
    producer = Producer()
    headers, body = cloudevent.to_http(request(data=None, dataref=dataref))
    response = post(producer, headers, body)
    assert response.status_code == status, response.text
    if status == 400:
        bucket = dataref.split("/")[2]
        assert response.json() == {
            "error": f"event: dataref bucket {bucket!r} is not allowed; allowed: wakeserve-payloads",
            "code": "invalid_event",
            "retryable": False,
        }
        assert producer.sent == []
    else:
        assert [topic for topic, *_ in producer.sent] == ["wakeserve.embedder.requests"]


def test_a_batch_names_the_event_whose_dataref_is_refused_and_writes_none() -> None:
    producer = Producer()
    good = cloudevent.to_structured(request(data=None, dataref="s3://wakeserve-payloads/a"))
    bad = cloudevent.to_structured(request(data=None, id="e2", dataref="s3://other/b"))
    headers = {"content-type": cloudevent.BATCH}
    response = post(producer, headers, orjson.dumps([good, bad]))
    assert response.status_code == 400
    assert (
        response.json()["error"]
        == "event 1 (id 'e2'): dataref bucket 'other' is not allowed; allowed: wakeserve-payloads"
    )
    assert producer.sent == []
