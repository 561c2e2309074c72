"""``wakeserve up`` end to end: real broker, S3, gateway, autoscaler and replica processes, woken from zero.

One ``up`` runs for the module with shortened periods (stable window 6 s, grace 1 s, KEDA cooldown 3 s,
polling 1 s) and a gateway token; every client here sends it, except where the test is about the token.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import psutil
import pytest

from events import cloudevent
from events.client import text_request
from tests.integration.async_support import Collector, request_event
from tests.support.up import REPO, UpProcess, start_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOKEN = "test-" + uuid.uuid4().hex  # generated per run, not a secret


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    process = start_up(
        tmp_path_factory.mktemp("up"),
        "--stable-window", "6", "--scale-to-zero-grace", "1", "--cooldown-period", "3", "--polling-interval", "1",
        "--max-replicas", "3",
        token=TOKEN,
    )  # fmt: skip
    yield process
    process.process.stop(60)


def echo_request(i: int) -> dict[str, object]:
    return {"id": f"r{i}", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [i, -i]}]}


def post_events(up: UpProcess, events: list[cloudevent.CloudEvent]) -> None:
    body = orjson.dumps([cloudevent.to_structured(e) for e in events])
    response = httpx.post(
        f"{up.url}/events",
        content=body,
        headers={**up.headers, "content-type": "application/cloudevents-batch+json"},
        timeout=30,
    )
    assert response.status_code == 202, response.text


def test_everything_starts_at_zero(up: UpProcess) -> None:
    functions = up.status()["functions"]
    assert set(functions) == {"embedder", "classifier", "echo", "generator"}
    assert all(f["replicas"] == 0 and f["ready"] == 0 for f in functions.values())


def test_without_the_token_nothing_reaches_a_replica_or_the_broker(up: UpProcess) -> None:
    infer = httpx.post(f"{up.url}/v2/models/embedder/infer", content=text_request(["hi"]), timeout=10)
    event = request_event("embedder", data=text_request(["hi"]))
    headers, body = cloudevent.to_http(event)
    posted = httpx.post(f"{up.url}/events", content=body, headers=headers, timeout=10)
    wrong = httpx.get(f"{up.url}/wakeserve/status", headers={"authorization": "Bearer nope"}, timeout=10)
    for response in (infer, posted, wrong):
        assert response.status_code == 401
        assert response.json()["error"] == "missing or wrong bearer token"
        assert response.headers["www-authenticate"].startswith("Bearer")
    time.sleep(1.5)  # longer than the zero-watch and a polling interval: a leak would have woken it
    embedder = up.function("embedder")
    assert embedder["requests"] == 0 and embedder["replicas"] == 0 and embedder["lag"] == 0


def test_http_at_zero_wakes_the_classifier_and_50_concurrent_requests_are_answered(up: UpProcess) -> None:
    assert up.function("classifier")["replicas"] == 0
    phrases = [("I was charged twice for the same order", "billing"), ("Where is my parcel right now?", "shipping")]

    async def call(client: httpx.AsyncClient, i: int) -> tuple[int, str, str]:
        text, label = phrases[i % 2]
        r = await client.post(f"{up.url}/v2/models/classifier/infer", content=text_request([text]))
        return r.status_code, r.json()["outputs"][0]["data"][0] if r.status_code == 200 else r.text, label

    async def burst() -> list[tuple[int, str, str]]:
        async with httpx.AsyncClient(headers=up.headers, timeout=120) as client:
            return await asyncio.gather(*(call(client, i) for i in range(50)))

    results = asyncio.run(burst())
    assert [status for status, _, _ in results] == [200] * 50, results
    assert all(got == want for _, got, want in results), results
    classifier = up.function("classifier")
    assert classifier["cold_starts"] == 1
    assert classifier["ready"] >= 1


def test_events_at_zero_wake_echo_and_every_request_gets_its_result(up: UpProcess) -> None:
    up.wait_for("echo at zero", lambda s: s["functions"]["echo"]["replicas"] == 0)
    cold_before = up.function("echo")["cold_starts"]
    collector = Collector(up.settings(), up.settings().topics.results)
    try:
        events = [request_event("echo", data=orjson.dumps(echo_request(i))) for i in range(40)]
        post_events(up, events)
        found = collector.wait_for({e.attributes["id"] for e in events}, timeout=90)
    finally:
        collector.close()
    for event in events:
        (result,) = found[event.attributes["id"]]
        assert result.attributes["type"] == "dev.wakeserve.inference.result"
        sent = orjson.loads(event.data or b"")["inputs"][0]["data"]
        assert orjson.loads(result.data or b"")["outputs"][0]["data"] == sent
    assert up.function("echo")["cold_starts"] == cold_before + 1


def test_sustained_load_scales_out_without_losing_a_request_then_idle_returns_to_zero(up: UpProcess) -> None:
    stop = threading.Event()
    statuses: list[int] = []
    peak = 0

    def client_loop(worker: int) -> None:
        with httpx.Client(headers=up.headers, timeout=60) as client:
            i = 0
            while not stop.is_set():
                body = echo_request(worker * 100_000 + i)
                r = client.post(f"{up.url}/v2/models/echo/infer", json=body)
                ok = r.status_code == 200 and r.json()["outputs"][0]["data"] == body["inputs"][0]["data"]  # type: ignore[index]
                statuses.append(r.status_code if ok else -r.status_code)
                i += 1
                time.sleep(0.005)

    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and peak < 2:
            peak = max(peak, up.function("echo")["ready"])
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert peak >= 2, up.function("echo")
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    # Idle: back to zero after the stable window and the grace period (6 s + 1 s here), drained cleanly.
    status = up.wait_for("echo back at zero", lambda s: s["functions"]["echo"]["replicas"] == 0, timeout=60)
    assert status["functions"]["echo"]["last_scale"]["after"] == 0


def test_a_killed_replica_is_replaced_and_no_event_is_lost(up: UpProcess) -> None:
    collector = Collector(up.settings(), up.settings().topics.results)
    try:
        first = [request_event("echo", data=orjson.dumps(echo_request(i))) for i in range(20)]
        post_events(up, first)
        collector.wait_for({e.attributes["id"] for e in first}, timeout=90)
        rest = [request_event("echo", data=orjson.dumps(echo_request(i))) for i in range(20, 220)]
        post_events(up, rest[:100])
        status = up.wait_for(
            "echo serving", lambda s: any(p["state"] == "ready" for p in s["functions"]["echo"]["pods"])
        )
        victim = next(p["pid"] for p in status["functions"]["echo"]["pods"] if p["state"] == "ready")
        crashes = status["functions"]["echo"]["crashes"]
        os.kill(victim, signal.SIGKILL)
        post_events(up, rest[100:])
        up.wait_for(
            "the killed replica replaced",
            lambda s: (
                s["functions"]["echo"]["crashes"] == crashes + 1
                and any(p["state"] == "ready" and p["pid"] != victim for p in s["functions"]["echo"]["pods"])
            ),
        )
        found = collector.wait_for({e.attributes["id"] for e in rest}, timeout=90)
    finally:
        collector.close()
    assert all(found[e.attributes["id"]] for e in rest)
    assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == psutil.STATUS_ZOMBIE


def test_status_command_prints_json_with_the_documented_fields(up: UpProcess) -> None:
    env = {**os.environ, "WAKESERVE_GATEWAY_TOKEN": TOKEN}
    out = subprocess.run(
        [sys.executable, "-m", "wakeserve", "status", "--json", "--url", up.url],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO, check=True,
    )  # fmt: skip
    functions = orjson.loads(out.stdout)["functions"]
    for name in ("embedder", "classifier", "echo", "generator"):
        assert {"replicas", "ready", "inflight", "lag", "cold_starts"} <= set(functions[name])
    assert functions["classifier"]["cold_starts"] >= 1
    table = subprocess.run(
        [sys.executable, "-m", "wakeserve", "status", "--url", up.url],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO, check=True,
    ).stdout  # fmt: skip
    assert table.splitlines()[0].split()[:3] == ["function", "replicas", "ready"]


def test_other_commands_find_up_through_its_owner_only_context(up: UpProcess) -> None:
    path = up.state_dir / "context.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    context = orjson.loads(path.read_bytes())
    assert context["gateway_url"] == up.url and context["ingress_url"] == f"{up.url}/events"
    assert context["kafka_bootstrap"] == up.kafka_bootstrap and context["s3_endpoint"] == up.s3_endpoint
    assert context["gateway_token"] == TOKEN and context["pid"] == up.process.pid
    # A fresh shell: no token, no endpoints, no AWS_* exported; only where `up` keeps its state.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WAKESERVE_"))}
    env["WAKESERVE_STATE_DIR"] = str(up.state_dir)
    out = subprocess.run(
        [sys.executable, "-m", "wakeserve", "status", "--json"],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert set(orjson.loads(out.stdout)["functions"]) == {"embedder", "classifier", "echo", "generator"}


def test_up_stops_cleanly_and_leaves_no_process_behind(tmp_path: Path) -> None:
    up = start_up(tmp_path, "--functions", "echo", "--stable-window", "6")
    response = httpx.post(f"{up.url}/v2/models/echo/infer", json=echo_request(1), timeout=120)
    assert response.status_code == 200
    children = up.descendants()
    assert len(children) >= 3  # broker, S3 server and the woken replica
    assert (up.state_dir / "context.json").exists()
    up.process.signal(signal.SIGTERM)
    assert up.process.proc.wait(60) == 0
    up.process.stop()  # already exited: this only closes its log
    assert not (up.state_dir / "context.json").exists()
    time.sleep(0.2)
    alive = [pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert alive == []


def test_replicas_stop_when_up_is_killed_without_draining_them(tmp_path: Path) -> None:
    up = start_up(tmp_path, "--functions", "echo", "--stable-window", "30")
    response = httpx.post(f"{up.url}/v2/models/echo/infer", json=echo_request(1), timeout=120)
    assert response.status_code == 200
    replicas = [p["pid"] for p in up.function("echo")["pods"]]
    assert replicas
    others = [pid for pid in up.descendants() if pid not in replicas]
    up.process.signal(signal.SIGKILL)  # no drain: the replicas are left in their own sessions
    up.process.stop()
    try:
        deadline = time.monotonic() + 30
        alive = replicas
        while alive and time.monotonic() < deadline:
            alive = [p for p in replicas if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
            time.sleep(0.2)
        assert alive == [], "replicas outlived the up that started them"
    finally:
        for pid in [*replicas, *others]:  # the broker and S3 server do not watch their parent
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
