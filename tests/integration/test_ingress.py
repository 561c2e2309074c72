"""``wakeserve ingress`` as a real process in front of the real broker."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from core.processes import ChildProcess, free_port, http_ok
from events import cloudevent, contract
from tests.integration.async_support import Collector, request_event, texts_payload

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ingress(event_stack, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    process = ChildProcess(
        "ingress",
        [sys.executable, "-m", "wakeserve", "ingress", "--port", str(port), "--functions", "embedder,classifier"],
        env={**event_stack.env, "WAKESERVE_MAX_INLINE_EVENT_BYTES": "2000"},
        log_path=tmp_path_factory.mktemp("ingress") / "ingress.log",
    )
    process.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), 60)
    yield f"http://127.0.0.1:{port}/events"
    process.stop()


def binary(event):
    headers, body = cloudevent.to_http(event)
    return {"headers": headers, "content": body}


def test_binary_structured_and_batch_are_accepted_and_answered(ingress, event_stack, embedder):
    one = request_event("embedder", data=texts_payload(["via binary"]))
    two = request_event("embedder", data=texts_payload(["via structured"]))
    batch = [request_event("embedder", data=texts_payload([f"batched {i}"])) for i in range(3)]
    collector = Collector(event_stack.settings, event_stack.settings.results_topic)
    try:
        r1 = httpx.post(ingress, **binary(one))
        r2 = httpx.post(
            ingress,
            content=orjson.dumps(cloudevent.to_structured(two)),
            headers={"content-type": cloudevent.STRUCTURED},
        )
        r3 = httpx.post(
            ingress,
            content=orjson.dumps([cloudevent.to_structured(e) for e in batch]),
            headers={"content-type": cloudevent.BATCH},
        )
        assert (r1.status_code, r1.json()) == (202, {"accepted": [one.id]})
        assert (r2.status_code, r2.json()) == (202, {"accepted": [two.id]})
        assert (r3.status_code, r3.json()) == (202, {"accepted": [e.id for e in batch]})
        replies = collector.wait_for({one.id, two.id, *(e.id for e in batch)})
    finally:
        collector.close()
    assert all(r[0].type == contract.RESULT_TYPE for r in replies.values())


def _missing_id():
    event = request_event("embedder", data=texts_payload(["x"]))
    del event.attributes["id"]
    return binary(event)


def _wrong_type():
    event = request_event("embedder", data=texts_payload(["x"]))
    event.attributes["type"] = "com.example.thing"
    return binary(event)


BAD = [
    (
        "not a cloudevent",
        lambda: {"content": b"{}", "headers": {"content-type": "application/json"}},
        400,
        "not a CloudEvent",
    ),
    ("missing id", _missing_id, 400, "missing required attribute(s): id"),
    ("wrong type", _wrong_type, 400, "requests must have type"),
    ("no model", lambda: binary(request_event("", data=texts_payload(["x"]))), 400, "'model' extension"),
    ("no data nor dataref", lambda: binary(request_event("embedder")), 400, "neither data"),
    (
        "dataref not s3",
        lambda: binary(request_event("embedder", dataref="https://example.com/x")),
        400,
        "must be an s3://",
    ),
    (
        "bad deadline",
        lambda: binary(request_event("embedder", data=texts_payload(["x"]), deadline="tomorrow")),
        400,
        "RFC 3339",
    ),
    (
        "unknown model",
        lambda: binary(request_event("translator", data=texts_payload(["x"]))),
        404,
        "no function named 'translator'",
    ),
    (
        "inline too large",
        lambda: binary(request_event("embedder", data=texts_payload(["y" * 3000]))),
        413,
        "send its s3:// URI as the 'dataref'",
    ),
    (
        "bad structured json",
        lambda: {"content": b"{", "headers": {"content-type": cloudevent.STRUCTURED}},
        400,
        "not valid JSON",
    ),
    ("empty batch", lambda: {"content": b"[]", "headers": {"content-type": cloudevent.BATCH}}, 400, "non-empty"),
]


@pytest.mark.parametrize(("case", "request_kwargs", "status", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_with_a_reason(ingress, case, request_kwargs, status, reason):
    r = httpx.post(ingress, **request_kwargs())
    assert r.status_code == status, r.text
    assert reason in r.json()["error"]


def test_a_batch_with_one_bad_event_writes_nothing(ingress, event_stack):
    good = request_event("classifier", data=texts_payload(["fine"]))
    bad = request_event("embedder", data=texts_payload(["x"]))
    bad.attributes["type"] = "wrong"
    collector = Collector(event_stack.settings, event_stack.settings.topics.requests("classifier"))
    try:
        r = httpx.post(
            ingress,
            content=orjson.dumps([cloudevent.to_structured(e) for e in (good, bad)]),
            headers={"content-type": cloudevent.BATCH},
        )
        assert r.status_code == 400 and "event 1" in r.json()["error"]
        ok = request_event("classifier", data=texts_payload(["marker"]))
        assert httpx.post(ingress, **binary(ok)).status_code == 202
        ids: set[str] = set()
        for _ in range(100):
            collector.poll()
            ids = {e.get("id") for e in collector.events()}
            if ok.id in ids:
                break
    finally:
        collector.close()
    assert ok.id in ids and good.id not in ids


def test_202_only_after_the_broker_acknowledged_and_503_while_it_is_down(s3_server, tmp_path):
    """Its own broker, so stopping it disturbs no other test."""
    from core.processes import start_kafka
    from events.kafka import ensure_topics
    from events.settings import EventSettings

    kafka_port, port = free_port(), free_port()
    broker = start_kafka(kafka_port, log_path=tmp_path / "tansu.log")
    env = {"WAKESERVE_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}", "WAKESERVE_INGRESS_ACK_TIMEOUT_S": "3"}
    settings = EventSettings(kafka_bootstrap=env["WAKESERVE_KAFKA_BOOTSTRAP"])
    ensure_topics(settings, [settings.topics.requests("embedder")])
    process = ChildProcess(
        "ingress",
        [sys.executable, "-m", "wakeserve", "ingress", "--port", str(port), "--functions", "embedder"],
        env=env,
        log_path=tmp_path / "ingress.log",
    )
    try:
        process.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), 60)
        url = f"http://127.0.0.1:{port}/events"
        first = request_event("embedder", data=texts_payload(["while the broker is up"]))
        up = httpx.post(url, **binary(first), timeout=60)
        assert up.status_code == 202 and up.json() == {"accepted": [first.id]}
        collector = Collector(settings, settings.topics.requests("embedder"))
        try:
            deadline = time.monotonic() + 30
            while not collector.records and time.monotonic() < deadline:
                collector.poll()
            assert [cloudevent.from_kafka(h, k, v).id for h, k, v in collector.records] == [first.id]
        finally:
            collector.close()
        broker.stop()
        second = request_event("embedder", data=texts_payload(["while the broker is down"]))
        down = httpx.post(url, **binary(second), timeout=60)
        assert down.status_code == 503, down.text
        assert down.json()["code"] == "unavailable" and down.json()["retryable"] is True
        assert "did not acknowledge" in down.json()["error"] and down.headers["retry-after"] == "1"
        assert process.alive()
    finally:
        process.stop()
        broker.stop()
