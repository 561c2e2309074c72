"""Waking a function from zero through a real ``wakeserve up``: by an HTTP call and by an event on Kafka.

Used by ``bench.coldstart``. One ``up`` (embedded broker and S3) serves every run; between runs the function
returns to zero on shortened periods. The KEDA ``pollingInterval`` stays as in the manifest (15 s): the wake
on lag must not wait for it.

- HTTP: the time from sending ``/v2/models/F/infer`` at zero to its response, plus the replica's own startup
  phases (``/wakeserve/startup``) and the gateway's decision time.
- Events: one event produced straight to the function's topic (not through the gateway, so only the lag
  watch can notice it); the time to the scale decision (``last_scale.at`` in the status) and to the result
  on the results topic.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from core.processes import ChildProcess, free_port
from events import cloudevent, contract
from events.client import text_request

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = ["--stable-window", "6", "--scale-to-zero-grace", "1", "--cooldown-period", "1"]


class Up:
    """A running ``wakeserve up`` for one function, and what the benchmark asks of it."""

    def __init__(self, function: str, tmp: Path) -> None:
        self.function = function
        self.http, self.kafka = free_port(), free_port()
        argv = [
            sys.executable, "-m", "wakeserve", "up", "--quiet", "--functions", function, "--scaler-port", "0",
            "--http-port", str(self.http), "--kafka-port", str(self.kafka), "--s3-port", str(free_port()),
            "--state-dir", str(tmp), *OVERRIDES,
        ]  # fmt: skip
        self.url = f"http://127.0.0.1:{self.http}"
        self.state_dir = tmp
        self.process = ChildProcess("wakeserve-up", argv, log_path=tmp / "up.log", cwd=REPO)
        self.process.wait_until(lambda: self.status() is not None, 60)

    def status(self) -> dict[str, Any] | None:
        try:
            r = httpx.get(f"{self.url}/wakeserve/status", timeout=2)
        except httpx.HTTPError:
            return None
        return dict(r.json()["functions"][self.function]) if r.status_code == 200 else None

    def wait_at_zero(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status()
            if s is not None and s["replicas"] == 0 and not s["pods"]:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.function} did not return to zero: {self.status()}")

    def replica_phases(self) -> dict[str, Any]:
        s = self.status() or {}
        # The startup timeline is on each replica's admin listener, behind the token up keeps in its context.
        token = orjson.loads((self.state_dir / "context.json").read_bytes())["admin_token"]
        for pod in s.get("pods", []):
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{pod['admin_port']}/wakeserve/startup",
                    headers={"authorization": f"Bearer {token}"},
                    timeout=2,
                )
                if r.status_code == 200:
                    return dict(r.json())
            except httpx.HTTPError:
                continue
        return {}

    def stop(self) -> int | None:
        return self.process.stop(60)


def http_from_zero(up: Up) -> dict[str, Any]:
    up.wait_at_zero()
    body = text_request(["a sentence to wake the function"])
    t0 = time.time()
    r = httpx.post(f"{up.url}/v2/models/{up.function}/infer", content=body, timeout=120)
    first_response = time.time() - t0
    r.raise_for_status()
    status = up.status() or {}
    decision = (status.get("last_scale") or {}).get("at")
    return {
        "first_response_s": round(first_response, 3),
        "decision_s": round(decision - t0, 3) if decision else None,
        "replica_startup_s": next((p["startup_s"] for p in status.get("pods", []) if p["startup_s"]), None),
        "replica": up.replica_phases(),
    }


@contextmanager
def _results(bootstrap: str, topic: str) -> Iterator[KafkaConsumer]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20)
    deadline = time.monotonic() + 30
    while not (partitions := consumer.partitions_for_topic(topic)) and time.monotonic() < deadline:
        time.sleep(0.1)
    tps = [TopicPartition(topic, p) for p in sorted(partitions or [])]
    consumer.assign(tps)
    consumer.seek_to_end()
    for tp in tps:
        consumer.position(tp)
    try:
        yield consumer
    finally:
        consumer.close()


def events_from_zero(up: Up) -> dict[str, Any]:
    up.wait_at_zero()
    bootstrap = f"127.0.0.1:{up.kafka}"
    request_id = uuid.uuid4().hex
    event = cloudevent.CloudEvent(
        {
            "specversion": "1.0",
            "id": request_id,
            "source": "/bench/wake",
            "type": contract.REQUEST_TYPE,
            "model": up.function,
            "datacontenttype": "application/json",
        },
        text_request(["a sentence to wake the function"]),
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    try:
        with _results(bootstrap, "wakeserve.results") as results:
            headers, key, value = cloudevent.to_kafka(event)
            t0 = time.time()
            producer.send(f"wakeserve.{up.function}.requests", key=key, value=value, headers=headers).get(10)
            landed = time.time() - t0
            decision: float | None = None
            result: float | None = None
            deadline = time.monotonic() + 120
            while result is None and time.monotonic() < deadline:
                for records in results.poll(timeout_ms=50).values():
                    for record in records:
                        reply = cloudevent.from_kafka(record.headers or [], record.key, record.value)
                        if reply.get("requestid") == request_id:
                            result = time.time() - t0
                            assert reply.get("type") == contract.RESULT_TYPE, orjson.loads(reply.data or b"{}")
                if decision is None:
                    at = ((up.status() or {}).get("last_scale") or {}).get("at")
                    decision = at - t0 if at and at >= t0 else None
    finally:
        producer.close(5)
    return {
        "acked_s": round(landed, 3),
        "decision_s": round(decision, 3) if decision is not None else None,
        "first_result_s": round(result, 3) if result is not None else None,
        "replica": up.replica_phases(),
    }


def measure(function: str, runs: int) -> dict[str, list[dict[str, Any]]]:
    """``runs`` HTTP wakes and ``runs`` event wakes, alternating, on one ``wakeserve up``."""
    tmp = Path(tempfile.mkdtemp(prefix="wakeserve-wake-"))
    up = Up(function, tmp)
    out: dict[str, list[dict[str, Any]]] = {"http": [], "events": []}
    try:
        for _ in range(runs):
            out["http"].append(http_from_zero(up))
            out["events"].append(events_from_zero(up))
    finally:
        out["up_exit_code"] = [{"code": up.stop()}]
    return out
