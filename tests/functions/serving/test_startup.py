"""A replica's startup timeline: where its origin comes from, the phases it records, and how it is served."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry

from core.processes import free_port
from functions import catalog
from functions.serving.metrics import PredictorMetrics
from functions.serving.replica import DeferredProcessor
from functions.serving.runtime import FunctionModel
from functions.serving.server import PredictorServer
from functions.serving.startup import (
    SERVING_GC_THRESHOLDS,
    SPAWN_TIME_ENV,
    StartupTimeline,
    hold_gc,
    resume_gc,
    spawn_time,
)


def test_spawn_time_prefers_the_parents_timestamp():
    assert spawn_time({SPAWN_TIME_ENV: "1700000000.25"}) == (1700000000.25, "env")


@pytest.mark.parametrize("value", ["", "soon"])
def test_spawn_time_without_a_usable_timestamp_comes_from_the_kernel(value):
    spawned, origin = spawn_time({SPAWN_TIME_ENV: value})
    assert origin == "proc"
    assert spawned <= time.time()


def test_kernel_start_time_of_a_fresh_process_is_when_it_was_spawned():
    code = "import json, time; from functions.serving.startup import spawn_time; print(json.dumps([*spawn_time({}), time.time()]))"
    before = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True).stdout
    spawned, origin, child_now = json.loads(out)
    assert origin == "proc"
    # The kernel counts in 10 ms ticks; the child ran well after it was forked.
    assert before - 0.05 <= spawned <= child_now
    assert spawned - before < 1.0


def test_marks_are_seconds_since_spawn_and_the_first_mark_wins():
    timeline = StartupTimeline(spawned_at=time.time() - 2.0)
    first = timeline.mark("imports")
    assert 2.0 <= first < 3.0
    assert timeline.mark("imports") == first
    assert timeline.mark("entry", at=timeline.spawned_at + 0.125) == 0.125
    report = timeline.report()
    assert report["phases"] == {"imports": first, "entry": 0.125}
    assert report["ready"] is False and report["origin"] == "given"


def test_waiting_for_ready_returns_as_soon_as_it_is_marked():
    async def scenario() -> tuple[bool, bool, float]:
        timeline = StartupTimeline(spawned_at=time.time())
        early = await timeline.wait_ready(0.01)
        asyncio.get_running_loop().call_later(0.05, timeline.mark, "ready")
        started = time.monotonic()
        late = await timeline.wait_ready(10)
        return early, late, time.monotonic() - started

    early, late, waited = asyncio.run(scenario())
    assert early is False and late is True
    assert waited < 5


def test_ready_log_line_is_one_json_document(caplog):
    timeline = StartupTimeline(spawned_at=time.time())
    timeline.mark("ready")
    with caplog.at_level(logging.INFO, logger="functions.serving.startup"):
        timeline.log_ready()
    (record,) = [r for r in caplog.records if r.name == "functions.serving.startup"]
    prefix, _, document = record.getMessage().partition(": ")
    assert prefix == "startup phases"
    assert json.loads(document)["phases"]["ready"] == timeline.phases["ready"]


def test_gc_is_paused_for_startup_and_resumed_with_startup_objects_frozen():
    thresholds = gc.get_threshold()
    try:
        hold_gc()
        assert not gc.isenabled()
        resume_gc()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == SERVING_GC_THRESHOLDS
        assert SERVING_GC_THRESHOLDS[0] > thresholds[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc.enable()


def echo_server(port: int, admin_port: int = 0) -> PredictorServer:
    function = catalog.create("echo")
    registry = CollectorRegistry()
    model = FunctionModel(function, PredictorMetrics(registry), max_batch_size=8, max_delay_ms=0.0, max_queue=8)
    return PredictorServer(
        [model], registry, host="127.0.0.1", http_port=port, grpc_port=0, grace_period_s=1, admin_port=admin_port
    )


async def _get_when_listening(client: httpx.AsyncClient, path: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await client.get(path)
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)


def test_a_served_replica_reports_its_phases_in_order_once_ready(caplog):
    port, admin_port = free_port(), free_port()
    server = echo_server(port, admin_port)
    on_ready: list[float] = []

    async def scenario() -> tuple[dict[str, object], int]:
        serving = asyncio.create_task(
            server.serve({"echo": lambda: None}, on_ready=lambda: on_ready.append(time.time()))
        )
        # The timeline shows the PID: it is served on the admin listener only.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin_port}", timeout=30) as client:
            response = await _get_when_listening(client, "/wakeserve/startup?wait=20")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            on_inference_port = await _get_when_listening(client, "/wakeserve/startup")
        assert on_inference_port.status_code == 404
        server.http.should_exit = True
        return response.json(), await serving

    with caplog.at_level(logging.INFO, logger="functions.serving.startup"):
        report, exit_code = asyncio.run(scenario())
    assert exit_code == 0
    assert report["ready"] is True
    phases = report["phases"]
    assert isinstance(phases, dict)
    assert set(phases) == {"listening", "artifacts", "load", "warmup", "ready"}
    assert phases["artifacts"] <= phases["load"] <= phases["warmup"] <= phases["ready"]
    assert phases["listening"] <= phases["ready"]
    assert len(on_ready) == 1
    assert any(r.getMessage().startswith("startup phases: ") for r in caplog.records)


def test_deferred_processor_is_built_once_and_again_after_a_failure():
    calls: list[int] = []

    def build() -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("S3 client cannot be built yet")
        time.sleep(0.05)
        return object()

    async def scenario() -> tuple[object, object]:
        deferred = DeferredProcessor(build)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError):
            await deferred.get()
        first, second = await asyncio.gather(deferred.get(), deferred.get())
        return first, second

    first, second = asyncio.run(scenario())
    assert first is second
    assert len(calls) == 2


def test_the_read_only_routes_are_called_once_before_ready():
    from functions.hotswap.authority import Authority
    from functions.hotswap.control import add_control_routes
    from functions.serving.admin import audit

    server = echo_server(free_port())
    add_control_routes(server.admin_app, {m.name: m for m in server.models}, {"echo": Authority(())}, audit)
    seen: list[str] = []
    app, admin_app = server.app, server.admin_app

    def recording(inner):  # type: ignore[no-untyped-def]
        async def record(scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["type"] == "http":
                seen.append(scope["path"])
            await inner(scope, receive, send)

        return record

    server.app, server.admin_app = recording(app), recording(admin_app)

    async def scenario() -> dict[str, int]:
        await server.models[0].load_async(lambda: None)
        try:
            return await server._warm_routes()
        finally:
            await server.models[0].close()

    statuses = asyncio.run(scenario())
    expected = ["/v2/health/ready", "/metrics", "/v2/models/echo", "/wakeserve/models/echo/slots"]
    expected.append("/wakeserve/models/echo/stats")
    assert seen == expected
    assert statuses == dict.fromkeys(expected, 200)
