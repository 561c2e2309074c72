"""The asynchronous path against the real tansu broker, moto's S3 server and real predictor processes."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import orjson
import pytest
from kafka import KafkaProducer

from core.processes import free_port, start_kafka
from events import cloudevent, contract
from events.kafka import ensure_topics
from events.settings import EventSettings
from functions.classifier.train import DATA, split
from tests.integration.async_support import Collector, produce, request_event, texts_payload
from tests.integration.conftest import stack_env
from tests.support.replicas import start_replica

pytestmark = pytest.mark.integration


def payloads_bucket(stack) -> str:
    return stack.settings.payload_buckets


def put_payload(stack, body: bytes, bucket: str | None = None) -> str:
    bucket = bucket or payloads_bucket(stack)
    key = f"req/{uuid.uuid4().hex}.json"
    stack.client().put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def result_data(stack, event) -> dict:
    ref = event.get("dataref")
    if ref:
        bucket, _, key = ref.removeprefix("s3://").partition("/")
        return orjson.loads(stack.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    return orjson.loads(event.data)


def test_1000_events_across_both_functions_get_exactly_one_correct_result(event_stack, producer, embedder, classifier):
    rng = random.Random(7)
    _, held_out = split(json.loads(DATA.read_text()))
    labels = sorted(json.loads(DATA.read_text()))
    expected_label: dict[str, str] = {}
    expected_rows: dict[str, int] = {}
    batches: dict[str, list] = {"embedder": [], "classifier": []}
    for i in range(1000):
        function = "embedder" if i % 2 else "classifier"
        if function == "classifier":
            phrase, label = held_out[i % len(held_out)]
            texts = [phrase]
        else:
            texts = [f"sentence {i} about {rng.choice(['cats', 'rockets', 'tax'])}"] * (20 if i % 97 == 1 else 1)
        body = texts_payload(texts)
        use_ref = i % 3 == 0
        event = request_event(
            function,
            dataref=put_payload(event_stack, body) if use_ref else None,
            data=None if use_ref else body,
            partitionkey=f"k{i % 13}",
        )
        if function == "classifier":
            expected_label[event.id] = labels[label]
        expected_rows[event.id] = len(texts)
        batches[function].append(event)
    collector = Collector(event_stack.settings, event_stack.settings.results_topic)
    try:
        for function, events in batches.items():
            produce(producer, event_stack.settings.topics.requests(function), events)
        replies = collector.wait_for(set(expected_rows), timeout=240)
    finally:
        collector.close()
    assert all(len(r) == 1 for r in replies.values()), [k for k, r in replies.items() if len(r) != 1][:5]
    correct = 0
    for request_id, (reply,) in replies.items():
        assert reply.type == contract.RESULT_TYPE, reply.data
        data = result_data(event_stack, reply)
        outputs = {o["name"]: o for o in data["outputs"]}
        if request_id in expected_label:
            assert reply.get("model") == "classifier" and reply.get("modelversion", "").startswith("head-")
            correct += outputs["label"]["data"] == [expected_label[request_id]]
        else:
            assert outputs["embedding"]["shape"] == [expected_rows[request_id], 384]
            vectors = np.array(outputs["embedding"]["data"], np.float32).reshape(-1, 384)
            np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
            assert bool(reply.get("dataref")) == (expected_rows[request_id] > 1)  # large results go to S3
    assert correct / len(expected_label) >= 0.9


def test_bad_events_get_error_codes_and_dead_letters_while_good_ones_succeed(event_stack, producer, embedder):
    topic = event_stack.settings.topics.requests("embedder")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    good = [request_event("embedder", data=texts_payload([f"fine {i}"])) for i in range(6)]
    cases = {
        "payload_not_found": request_event("embedder", dataref=f"s3://{payloads_bucket(event_stack)}/no/such.json"),
        "invalid_event": request_event(
            "embedder",
            dataref=put_payload(
                event_stack, texts_payload(["x"]), event_stack.settings.payload_buckets.replace("payloads", "forbidden")
            ),
        ),
        "invalid_input": request_event(
            "embedder",
            data=orjson.dumps({"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]}),
        ),
        "expired": request_event("embedder", data=texts_payload(["late"]), deadline=past),
        "unknown_model": request_event("classifier", data=texts_payload(["wrong topic"])),
    }
    wrong_type = request_event("embedder", data=texts_payload(["x"]))
    wrong_type.attributes["type"] = "com.example.other"
    cases["invalid_event_type"] = wrong_type
    events = [*good[:3], *cases.values(), *good[3:]]
    collector = Collector(event_stack.settings, event_stack.settings.results_topic)
    dead = Collector(event_stack.settings, event_stack.settings.deadletter_topic)
    try:
        produce(producer, topic, events)
        # A record that is no CloudEvent at all, identified by its key.
        producer.send(topic, key=b"garbage-key", value=b"\x00not an event").get(10)
        replies = collector.wait_for({e.id for e in events})
        deadline = time.monotonic() + 30
        garbage = []
        while not garbage and time.monotonic() < deadline:
            collector.poll()
            garbage = [e for e in collector.events() if e.get("partitionkey") == "garbage-key"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            dead.poll()
            if {dict(h).get("ce_id", b"").decode() for h, _, _ in dead.records} >= {e.id for e in cases.values()}:
                break
        dead_records = dead.records
    finally:
        collector.close()
        dead.close()
    for event in good:
        assert [r.type for r in replies[event.id]] == [contract.RESULT_TYPE]
    for name, event in cases.items():
        (reply,) = replies[event.id]
        assert reply.type == contract.ERROR_TYPE
        body = orjson.loads(reply.data)
        assert body["code"] == name.removesuffix("_type"), (name, body)
        assert body["message"] and body["retryable"] is False
    assert garbage and orjson.loads(garbage[0].data)["code"] == "invalid_event"
    letters = {dict(h).get("ce_id", b"").decode(): dict(h) for h, _, _ in dead_records}
    for name, event in cases.items():
        headers = letters[event.id]
        assert headers["ce_errorcode"].decode() == name.removesuffix("_type")
        assert headers["ce_type"].decode() == event.type  # the original, unchanged
    assert any(k == b"garbage-key" and v == b"\x00not an event" for _, k, v in dead_records)


def test_redelivered_request_writes_the_same_result_object(event_stack, producer, embedder):
    body = texts_payload([f"a long enough batch {i}" for i in range(24)])  # > 64 KiB of JSON out
    event = request_event("embedder", data=body)
    collector = Collector(event_stack.settings, event_stack.settings.results_topic)
    try:
        produce(producer, event_stack.settings.topics.requests("embedder"), [event])
        collector.wait_for({event.id})
        produce(producer, event_stack.settings.topics.requests("embedder"), [event])  # the same event again
        deadline = time.monotonic() + 60
        while len(collector.by_request({event.id}).get(event.id, [])) < 2 and time.monotonic() < deadline:
            collector.poll()
        first, second = collector.by_request({event.id})[event.id]
    finally:
        collector.close()
    assert first.get("dataref") and first.get("dataref") == second.get("dataref")
    assert result_data(event_stack, first)["outputs"][0]["shape"] == [24, 384]
    listing = event_stack.client().list_objects_v2(
        Bucket=event_stack.settings.results_bucket, Prefix="results/embedder/"
    )
    assert sum(1 for o in listing.get("Contents", []) if event.id in o["Key"]) == 1


def slow_echo(tmp_path) -> list[str]:
    """Arguments for an echo replica that takes 20 ms per batch of at most 4, so a stream is still in progress
    when the test interrupts it."""
    artifact = tmp_path / "slow-echo"
    artifact.mkdir(exist_ok=True)
    (artifact / "config.json").write_text(json.dumps({"version": "slow", "delay_ms": 20}))
    return ["--model-uri", str(artifact), "--max-batch-size", "4", "--consume"]


def test_consumer_killed_mid_stream_loses_nothing(event_stack, producer, tmp_path):
    echo = start_replica("echo", tmp_path, *slow_echo(tmp_path), env=event_stack.env)
    events = [
        request_event(
            "echo", data=orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [i, -i]}]})
        )
        for i in range(400)
    ]
    ids = {e.id for e in events}
    collector = Collector(event_stack.settings, event_stack.settings.results_topic)
    collector.drain()  # so the count below follows the replica, not the reading of earlier results
    try:
        produce(producer, event_stack.settings.topics.requests("echo"), events[:200])
        deadline = time.monotonic() + 60
        while len(collector.by_request(ids)) < 50 and time.monotonic() < deadline:
            collector.poll()
        echo.process.signal(signal.SIGKILL)
        echo.process.proc.wait(10)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            collector.poll()
        answered_before_restart = len(collector.by_request(ids))
        produce(producer, event_stack.settings.topics.requests("echo"), events[200:])
        echo = start_replica("echo", tmp_path, *slow_echo(tmp_path), env=event_stack.env)
        replies = collector.wait_for(ids, timeout=120)
    finally:
        collector.close()
        echo.process.stop()
    assert 50 <= answered_before_restart < 200  # the kill left work unanswered
    assert set(replies) == ids
    for event in events:
        data = orjson.loads(replies[event.id][0].data)
        assert data["outputs"][0]["data"] == orjson.loads(event.data)["inputs"][0]["data"]


def test_a_member_joining_mid_stream_rebalances_without_failing_the_first(event_stack, producer, tmp_path):
    """Scale-out under event load: the first replica commits its finished work on revoke and keeps going."""
    prefix = f"rebalance{uuid.uuid4().hex[:6]}"
    env = {**event_stack.env, "WAKESERVE_TOPIC_PREFIX": prefix}
    settings = EventSettings(**{**event_stack.settings.model_dump(), "topic_prefix": prefix})
    topic = settings.topics.requests("echo")
    ensure_topics(settings, [topic])

    def event(i: int) -> cloudevent.CloudEvent:
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [i]}]}
        return request_event("echo", data=orjson.dumps(body))

    sent: list[cloudevent.CloudEvent] = []
    stop = threading.Event()

    def stream() -> None:
        # A steady stream, so the first replica has finished-but-uncommitted work when the group rebalances.
        while not stop.is_set() and len(sent) < 20_000:
            batch = [event(len(sent) + i) for i in range(100)]
            produce(producer, topic, batch)
            sent.extend(batch)
            stop.wait(0.05)  # a steady pace, and an immediate end when told

    collector = Collector(event_stack.settings, event_stack.settings.results_topic)
    first = start_replica("echo", tmp_path, "--consume", env=env)
    second = None
    streamer = threading.Thread(target=stream)
    try:
        streamer.start()
        log_path = first.process.log_path
        assert log_path is not None
        first.process.wait_until(lambda: "assigned [(" in log_path.read_text(), 30)
        deadline = time.monotonic() + 30
        while len(collector.by_request({e.id for e in sent})) < 200 and time.monotonic() < deadline:
            collector.poll()
        second = start_replica("echo", tmp_path, "--consume", env=env)
        second_log = second.process.log_path
        assert second_log is not None
        # The join and the rebalance happen under load: wait until partitions moved to the second member...
        second.process.wait_until(lambda: "assigned [(" in second_log.read_text(), 60)
        # ...then until events sent after it are answered as well, before the stream stops.
        after_rebalance = {e.id for e in list(sent)}
        deadline = time.monotonic() + 60
        while len(collector.by_request({e.id for e in list(sent)} - after_rebalance)) < 200:
            assert time.monotonic() < deadline, "no replies to events sent after the rebalance"
            collector.poll()
        stop.set()
        streamer.join(30)
        replies = collector.wait_for({e.id for e in sent}, timeout=120)
        log = log_path.read_text()
        assert first.process.alive(), log[-2000:]
        assert "could not publish" not in log and "background worker failed" not in log
        assert "revoked [(" in log  # it did give partitions away (and committed its finished work first)
    finally:
        stop.set()
        collector.close()
        first.process.stop()
        if second is not None:
            second.process.stop()
    assert set(replies) == {e.id for e in sent}


def test_broker_restart_with_s3_storage_loses_nothing(s3_server, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    client = s3_server.client()
    for bucket in (f"tansu-{suffix}", f"p-{suffix}", f"r-{suffix}"):
        client.create_bucket(Bucket=bucket)
    port = free_port()
    broker_env = {"AWS_ENDPOINT": s3_server.endpoint, "AWS_ALLOW_HTTP": "true"}
    storage = f"s3://tansu-{suffix}/"
    broker = start_kafka(port, storage=storage, env=broker_env, log_path=tmp_path / "tansu.log")
    env = stack_env(f"127.0.0.1:{port}", s3_server.endpoint, f"p-{suffix}", f"r-{suffix}")
    settings = EventSettings(**{k.removeprefix("WAKESERVE_").lower(): v for k, v in env.items()})
    ensure_topics(settings, [settings.topics.requests("echo"), settings.topics.results, settings.topics.deadletter])
    echo = start_replica("echo", tmp_path, *slow_echo(tmp_path), env=env)
    events = [
        request_event(
            "echo", data=orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [i]}]})
        )
        for i in range(200)
    ]
    ids = {e.id for e in events}
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", retries=20, reconnect_backoff_max_ms=1000
    )
    try:
        produce(producer, settings.topics.requests("echo"), events[:100])
        # The restart lands mid-stream: after some results, before all of the first hundred.
        before = Collector(settings, settings.results_topic)
        try:
            deadline = time.monotonic() + 60
            while len(before.by_request(ids)) < 10 and time.monotonic() < deadline:
                before.poll()
            answered_before_restart = len(before.by_request(ids))
        finally:
            before.close()
        broker.stop()
        broker = start_kafka(port, storage=storage, env=broker_env, log_path=tmp_path / "tansu.log")
        produce(producer, settings.topics.requests("echo"), events[100:])
        collector = Collector(settings, settings.results_topic)
        try:
            replies = collector.wait_for(ids, timeout=180)
        finally:
            collector.close()
    finally:
        producer.close(timeout=5)
        echo.process.stop()
        broker.stop()
    assert 10 <= answered_before_restart < 100
    assert set(replies) == ids
    assert all(r[0].type == contract.RESULT_TYPE for r in replies.values())


def test_predictor_cloudevents_route_replies_in_binary_mode(event_stack, embedder):
    url = f"{embedder.url}/cloudevents"
    base = {
        "ce-specversion": "1.0",
        "ce-id": "http-1",
        "ce-source": "/knative",
        "ce-type": contract.REQUEST_TYPE,
        "ce-model": "embedder",
        "content-type": "application/json",
    }
    body = texts_payload(["over http"])
    for headers in (base, {**base, "ce-time": "2026-11-21T10:00:00Z"}):
        r = httpx.post(url, content=body, headers=headers)
        assert r.status_code == 200
        assert r.headers["ce-type"] == contract.RESULT_TYPE and r.headers["ce-requestid"] == "http-1"
        assert r.headers["content-type"] == "application/json"
        assert r.json()["outputs"][0]["shape"] == [1, 384]
    structured = {
        "specversion": "1.0",
        "id": "http-2",
        "source": "/knative",
        "type": contract.REQUEST_TYPE,
        "model": "embedder",
        "data": orjson.loads(body),
    }
    r = httpx.post(url, content=orjson.dumps(structured), headers={"content-type": cloudevent.STRUCTURED})
    assert r.status_code == 200 and r.headers["ce-requestid"] == "http-2"
    bad = httpx.post(url, content=b'{"inputs": []}', headers={**base, "ce-id": "http-3"})
    assert bad.status_code == 200 and bad.headers["ce-type"] == contract.ERROR_TYPE
    assert bad.json()["code"] == "invalid_input"
    not_an_event = httpx.post(url, content=body, headers={"content-type": "application/json"})
    assert not_an_event.status_code == 400 and "not a CloudEvent" in not_an_event.json()["error"]


def test_same_key_events_are_answered_in_order(event_stack, producer, embedder):
    events = [
        request_event("embedder", data=texts_payload([f"ordered {i}"]), partitionkey="one-key") for i in range(40)
    ]
    collector = Collector(event_stack.settings, event_stack.settings.results_topic)
    try:
        produce(producer, event_stack.settings.topics.requests("embedder"), events)
        collector.wait_for({e.id for e in events})
        order = [e.get("requestid") for e in collector.events() if e.get("partitionkey") == "one-key"]
    finally:
        collector.close()
    assert order == [e.id for e in events]


def test_dispatch_calls_a_remote_predictor_and_retries_until_it_is_ready(event_stack, producer, tmp_path):
    """`wakeserve dispatch` starts before its target: refused connections and 503s are retried, 400s are not."""
    import sys

    from core.processes import ChildProcess

    port = free_port()
    dispatcher = ChildProcess(
        "dispatch",
        [sys.executable, "-m", "wakeserve", "dispatch", "embedder", "--target-url", f"http://127.0.0.1:{port}"],
        env={
            **event_stack.env,
            "WAKESERVE_MAX_ATTEMPTS": "100",
            "WAKESERVE_RETRY_MAX_MS": "500",
            "WAKESERVE_TOPIC_PREFIX": "dispatchtest",
        },
        log_path=tmp_path / "dispatch.log",
    )
    topic = "dispatchtest.embedder.requests"
    ensure_topics(event_stack.settings, [topic])
    events = [request_event("embedder", data=texts_payload([f"remote {i}"])) for i in range(20)]
    bad = request_event(
        "embedder", data=orjson.dumps({"inputs": [{"name": "nope", "datatype": "BYTES", "shape": [1], "data": ["x"]}]})
    )
    collector = Collector(event_stack.settings, event_stack.settings.results_topic)
    target = None
    try:
        produce(producer, topic, [*events, bad])
        # The target starts only once the dispatcher has met a refused connection and scheduled a retry.
        dispatcher.wait_until(lambda: "retrying event" in (tmp_path / "dispatch.log").read_text(), 60)
        target = ChildProcess(
            "target",
            [sys.executable, "-m", "wakeserve", "serve", "embedder", "--http-port", str(port), "--grpc-port", "0"],
            log_path=tmp_path / "target.log",
        )
        replies = collector.wait_for({e.id for e in events} | {bad.id}, timeout=180)
    finally:
        collector.close()
        dispatcher.stop()
        if target is not None:
            target.stop()
    for event in events:
        (reply,) = replies[event.id]
        assert reply.type == contract.RESULT_TYPE and reply.get("modelversion") == "all-MiniLM-L6-v2"
        assert orjson.loads(reply.data)["outputs"][0]["shape"] == [1, 384]
    (error,) = replies[bad.id]
    assert orjson.loads(error.data)["code"] == "invalid_input"
    assert "unexpected input 'nope'" in orjson.loads(error.data)["message"]


def post_and_wait(stack, *args: str, timeout: float = 60) -> tuple[dict, dict]:
    """`wakeserve post ... --wait` as a user runs it: the posted line, and the printed result."""
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "wakeserve", "post", *args, "--wait", "--timeout", str(timeout)],
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=timeout + 60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    return json.loads(lines[0]), json.loads("\n".join(lines[1:]))


def test_cli_post_waits_for_and_prints_the_result(event_stack, classifier):
    posted, result = post_and_wait(event_stack, "classifier", "--text", "I was charged twice this month")
    assert posted["dataref"].startswith(f"s3://{event_stack.settings.payload_buckets}/")
    assert result["requestid"] == posted["posted"] and result["type"] == contract.RESULT_TYPE
    assert result["data"]["outputs"][0]["data"] == ["billing"]


def test_payload_limit_structured_records_and_dead_letter_messages(event_stack, producer, tmp_path):
    """A dataref over the size limit is `payload_too_large` (with its dead letter and message) while a small one
    and a structured-mode record in the same stream succeed."""
    prefix = f"limits{uuid.uuid4().hex[:6]}"
    env = {**event_stack.env, "WAKESERVE_TOPIC_PREFIX": prefix, "WAKESERVE_MAX_PAYLOAD_BYTES": "2048"}
    settings = EventSettings(**{**event_stack.settings.model_dump(), "topic_prefix": prefix})
    topic = settings.topics.requests("echo")
    ensure_topics(settings, [topic])

    def body(values: list[float]) -> bytes:
        return orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, len(values)], "data": values}]})

    small = request_event("echo", dataref=put_payload(event_stack, body([1.0, 2.0])))
    large_body = body([float(i) for i in range(600)])
    assert len(large_body) > 2048
    large = request_event("echo", dataref=put_payload(event_stack, large_body))
    structured = request_event("echo", data=body([3.0, 4.0]), time=datetime.now(UTC).isoformat())
    echo = start_replica("echo", tmp_path, "--consume", env=env)
    collector = Collector(event_stack.settings, event_stack.settings.results_topic)
    dead = Collector(event_stack.settings, event_stack.settings.deadletter_topic)
    try:
        produce(producer, topic, [small, large])
        producer.send(
            topic,
            value=orjson.dumps(cloudevent.to_structured(structured)),
            headers=[("content-type", b"application/cloudevents+json")],
        ).get(10)
        replies = collector.wait_for({small.id, large.id, structured.id})
        deadline = time.monotonic() + 30
        letters: dict[str, dict] = {}
        while large.id not in letters and time.monotonic() < deadline:
            dead.poll()
            letters = {dict(h).get("ce_id", b"").decode(): dict(h) for h, _, _ in dead.records}
    finally:
        collector.close()
        dead.close()
        echo.process.stop()
    (error,) = replies[large.id]
    assert error.type == contract.ERROR_TYPE
    detail = orjson.loads(error.data)
    assert detail["code"] == "payload_too_large" and "2048" in detail["message"] and detail["retryable"] is False
    assert letters[large.id]["ce_errorcode"] == b"payload_too_large"
    assert b"2048" in letters[large.id]["ce_errormessage"]
    assert letters[large.id]["ce_dataref"].decode() == large.get("dataref")  # the original request, unchanged
    for event, expected in ((small, [1.0, 2.0]), (structured, [3.0, 4.0])):
        (reply,) = replies[event.id]
        assert reply.type == contract.RESULT_TYPE
        assert orjson.loads(reply.data)["outputs"][0]["data"] == expected


def test_cli_post_file_fetches_a_referenced_result_and_results_follow_prints_new_ones(
    event_stack, producer, embedder, tmp_path
):
    import sys

    from core.processes import ChildProcess

    request_file = tmp_path / "request.json"
    request_file.write_bytes(texts_payload([f"a sentence long enough to matter, number {i}" for i in range(24)]))
    posted, result = post_and_wait(event_stack, "embedder", "--file", str(request_file), timeout=90)
    assert result["requestid"] == posted["posted"]
    assert result["dataref"].startswith(f"s3://{event_stack.settings.results_bucket}/")  # over 64 KiB: by reference
    assert result["data"]["outputs"][0]["shape"] == [24, 384]  # and fetched from S3 for the user

    follower = ChildProcess(
        "results-follow",
        [sys.executable, "-m", "wakeserve", "results", "--follow"],
        env=event_stack.env,
        log_path=tmp_path / "follow.log",
    )
    sent: set[str] = set()
    seen: dict[str, dict] = {}
    try:
        # The follower starts at the end of the topic once it has resolved its position: post until one shows.
        def followed() -> bool:
            for line in (tmp_path / "follow.log").read_text(errors="replace").splitlines():
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc, dict) and doc.get("requestid") in sent:
                    seen[doc["requestid"]] = doc
            return bool(seen)

        deadline = time.monotonic() + 90
        while not seen and time.monotonic() < deadline:
            event = request_event("embedder", data=texts_payload(["follow me"]))
            produce(producer, event_stack.settings.topics.requests("embedder"), [event])
            sent.add(event.id)
            with contextlib.suppress(TimeoutError):  # not shown within a second: post another
                follower.wait_until(followed, timeout=1.0)
    finally:
        follower.stop()
    assert seen, (tmp_path / "follow.log").read_text(errors="replace")[-2000:]
    doc = next(iter(seen.values()))
    assert doc["type"] == contract.RESULT_TYPE and doc["data"]["outputs"][0]["shape"] == [1, 384]


def test_dispatch_gives_up_after_bounded_retries_with_an_error_event_a_dead_letter_and_a_commit(
    event_stack, producer, tmp_path
):
    """A target that never answers: after WAKESERVE_MAX_ATTEMPTS the event is answered `unavailable`
    (retryable), dead-lettered, and its offset committed, so the next dispatcher does not see it again."""
    import sys

    from kafka import KafkaConsumer, TopicPartition

    from core.processes import ChildProcess

    prefix = f"giveup{uuid.uuid4().hex[:6]}"
    settings = EventSettings(**{**event_stack.settings.model_dump(), "topic_prefix": prefix})
    topic = settings.topics.requests("echo")
    ensure_topics(settings, [topic])
    env = {**event_stack.env, "WAKESERVE_MAX_ATTEMPTS": "3", "WAKESERVE_TOPIC_PREFIX": prefix}
    argv = [sys.executable, "-m", "wakeserve", "dispatch", "echo", "--target-url", f"http://127.0.0.1:{free_port()}"]
    event = request_event(
        "echo", data=orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1]}]})
    )
    collector = Collector(event_stack.settings, event_stack.settings.results_topic)
    dead = Collector(event_stack.settings, event_stack.settings.deadletter_topic)
    dispatcher = ChildProcess("dispatch", argv, env=env, log_path=tmp_path / "dispatch.log")
    try:
        produce(producer, topic, [event])
        (error,) = collector.wait_for({event.id}, timeout=120)[event.id]
        deadline = time.monotonic() + 30
        while not any(dict(h).get("ce_id") == event.id.encode() for h, _, _ in dead.records):
            assert time.monotonic() < deadline, "no dead letter"
            dead.poll()
        # The commit follows the acknowledged replies; wait for it to reach the broker.
        group = settings.topics.group("echo")
        checker = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False)
        try:
            parts = [TopicPartition(topic, p) for p in checker.partitions_for_topic(topic) or ()]
            deadline = time.monotonic() + 30
            while sum((checker.committed(tp) or 0) for tp in parts) < 1:
                assert time.monotonic() < deadline, "offset not committed"
                time.sleep(0.3)
        finally:
            checker.close(autocommit=False)
    finally:
        dispatcher.stop()
        collector.close()
        dead.close()
    assert error.type == contract.ERROR_TYPE
    detail = orjson.loads(error.data)
    assert detail["code"] == "unavailable" and detail["retryable"] is True
    assert (tmp_path / "dispatch.log").read_text().count("retrying event") == 2  # 3 attempts in all


def test_high_priority_events_overtake_a_queued_backlog(event_stack, producer, tmp_path):
    """`priority: high` events produced behind a backlog of `low` ones are answered before most of it (in
    arrival order they would be answered last)."""
    prefix = f"prio{uuid.uuid4().hex[:6]}"
    settings = EventSettings(**{**event_stack.settings.model_dump(), "topic_prefix": prefix})
    topic = settings.topics.requests("echo")
    ensure_topics(settings, [topic])

    def event(i: int, priority: str) -> cloudevent.CloudEvent:
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [i]}]}
        return request_event("echo", data=orjson.dumps(body), priority=priority)

    low = [event(i, "low") for i in range(120)]
    high = [event(1000 + i, "high") for i in range(8)]
    echo = start_replica(
        "echo", tmp_path, *slow_echo(tmp_path), env={**event_stack.env, "WAKESERVE_TOPIC_PREFIX": prefix}
    )
    collector = Collector(event_stack.settings, event_stack.settings.results_topic)
    try:
        produce(producer, topic, low)
        produce(producer, topic, high)
        replies = collector.wait_for({e.id for e in low + high}, timeout=120)
    finally:
        collector.close()
        echo.process.stop()
    answered = {rid: datetime.fromisoformat(r[0].get("time")) for rid, r in replies.items()}
    low_times = sorted(answered[e.id] for e in low)
    assert max(answered[e.id] for e in high) < low_times[len(low) // 2], (
        "high-priority events waited behind the backlog"
    )
