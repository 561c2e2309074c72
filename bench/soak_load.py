"""The traffic of a fault soak against a running ``wakeserve up``, every request written into a :class:`Ledger`.

Three threads: v2 calls to ``echo`` through the gateway, events whose payload is put in S3 first and posted
to the ingress by reference (claim check), and a reader of the results topic that marks events answered. Each
keeps going through faults: an error is recorded against its request, never raised.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import orjson
from kafka import KafkaConsumer, TopicPartition

from bench.soak_ledger import Ledger
from core.s3 import make_s3_client
from events import cloudevent, contract
from events.cloudevent import CloudEvent
from events.settings import EventSettings


def echo_body(i: int) -> bytes:
    return orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [i, -i]}]})


def _reason(response: httpx.Response) -> str:
    try:
        return f"{response.status_code} {response.json()['error']}"
    except Exception:  # any body will do as the reason
        return f"{response.status_code} {response.text[:120]}"


@dataclass
class Target:
    """Where the soak sends: the gateway (and its ingress), its token, the broker and the S3 of that ``up``."""

    url: str
    settings: EventSettings
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}


@dataclass
class Traffic:
    target: Target
    ledger: Ledger
    function: str = "echo"
    events_per_s: float = 10.0
    calls_per_s: float = 10.0
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for loop in (self._events, self._calls, self._results):
            thread = threading.Thread(target=loop, name=loop.__name__, daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop_sending(self) -> None:
        """Stop the senders; the results reader goes on until :meth:`close`."""
        self.stop.set()
        for thread in self.threads[:2]:
            thread.join(60)

    def close(self) -> None:
        self.stop.set()
        self.done.set()
        for thread in self.threads:
            thread.join(60)

    def _events(self) -> None:
        s3 = make_s3_client(self.target.settings.s3_endpoint)
        bucket = sorted(self.target.settings.allowed_buckets)[0]
        with httpx.Client(headers=self.target.headers, timeout=30) as client:
            i = 0
            while not self.stop.wait(1.0 / self.events_per_s):
                i += 1
                request_id = uuid.uuid4().hex
                self.ledger.sent(request_id, "event", time.time())
                key = f"soak/{request_id}.json"
                try:
                    s3.put_object(Bucket=bucket, Key=key, Body=echo_body(i), ContentType="application/json")
                except Exception as exc:  # recorded as this request's clear error
                    self.ledger.failed(request_id, f"payload upload: {type(exc).__name__}")
                    continue
                event = CloudEvent(
                    {
                        "specversion": "1.0",
                        "id": request_id,
                        "source": "/soak",
                        "type": contract.REQUEST_TYPE,
                        "model": self.function,
                        "dataref": f"s3://{bucket}/{key}",
                    }
                )
                headers, body = cloudevent.to_http(event)
                try:
                    response = client.post(f"{self.target.url}/events", content=body, headers=headers)
                except httpx.HTTPError as exc:
                    self.ledger.failed(request_id, f"ingress: {type(exc).__name__}")
                    continue
                if response.status_code == 202:
                    self.ledger.accepted(request_id)
                else:
                    self.ledger.failed(request_id, _reason(response))

    def _calls(self) -> None:
        with httpx.Client(headers=self.target.headers, timeout=60) as client:
            i = 0
            while not self.stop.wait(1.0 / self.calls_per_s):
                i += 1
                request_id = uuid.uuid4().hex
                self.ledger.sent(request_id, "sync", time.time())
                url = f"{self.target.url}/v2/models/{self.function}/infer"
                try:
                    response = client.post(url, content=echo_body(i), headers={"content-type": "application/json"})
                except httpx.HTTPError as exc:
                    self.ledger.failed(request_id, f"gateway: {type(exc).__name__}")
                    continue
                if response.status_code == 200:
                    self.ledger.answered(request_id, time.time())
                else:
                    self.ledger.failed(request_id, _reason(response))

    def _results(self) -> None:
        seen: set[tuple[int, int]] = set()
        topic = self.target.settings.topics.results
        consumer = KafkaConsumer(
            bootstrap_servers=self.target.settings.kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            reconnect_backoff_max_ms=1000,
        )
        try:
            partitions: set[int] | None = None
            while not self.done.is_set():
                if not partitions:
                    partitions = consumer.partitions_for_topic(topic)
                    if partitions:
                        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
                        consumer.seek_to_beginning()
                    else:
                        time.sleep(0.2)
                    continue
                try:
                    batches = consumer.poll(timeout_ms=200)
                except Exception:  # the broker restarting; the consumer reconnects by itself
                    continue
                for records in batches.values():
                    for r in records:
                        # Offsets, not ids: a record read twice (after a reconnect) is not a second result.
                        if (r.partition, r.offset) in seen:
                            continue
                        seen.add((r.partition, r.offset))
                        event = cloudevent.from_kafka([(k, v or b"") for k, v in r.headers or []], r.key, r.value)
                        request_id = event.get("requestid")
                        if request_id:
                            self.ledger.answered(request_id, time.time(), error=event.type == contract.ERROR_TYPE)
        finally:
            consumer.close()

    def wait_for_answers(self, timeout: float) -> set[str]:
        """Wait until every accepted event has a result; returns the ones still without one."""
        deadline = time.monotonic() + timeout
        while True:
            missing = {i for i in self.ledger.accepted_events() if not self.ledger.requests[i].answered}
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.2)
