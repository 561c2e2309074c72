"""Model lifecycle through ``wakeserve up`` under continuous HTTP and event load: canary, promotion, gates,
automatic rollback, version consistency. Versions are echo artifacts (``functions/echo/function.py``)."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.async_support import Collector
from tests.support.load import EchoLoad
from tests.support.up import UpProcess, start_up
from wakeserve import rollout_command

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TERMINAL = {"promoted", "rolled_back", "aborted", "failed"}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, versions: Path) -> Iterator[UpProcess]:
    # Replicas load candidates only from allowlisted places: here, the test's echo versions.
    env = {"WAKESERVE_MODEL_URI_ALLOWLIST": f"s3://wakeserve-models/,{versions}"}
    process = start_up(tmp_path_factory.mktemp("rollout"), "--functions", "echo", echo_min_replicas=2, env=env)
    yield process
    process.process.stop(60)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("echo-versions")
    configs = {
        "good": {},
        "wrong": {"scale": 2.0},  # fails the golden gate
        "flaky": {"error_rate": 0.5, "healthy_calls": 40},  # passes the gates, then fails half its calls
        "slow": {"delay_ms": 60, "healthy_calls": 40},  # passes the gates, then takes 60 ms a call
    }
    for name, config in configs.items():
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps(config))
    return root


def rollout_url(up: UpProcess) -> str:
    return f"{up.url}/wakeserve/functions/echo/rollout"


def start_rollout(up: UpProcess, **body: Any) -> dict[str, Any]:
    response = httpx.post(rollout_url(up), json=body, headers=up.admin_headers, timeout=10)
    assert response.status_code == 202, response.text
    return dict(response.json())


def wait_rollout(up: UpProcess, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = httpx.get(rollout_url(up), headers=up.headers, timeout=10).json()
        if state["rollout"] and state["rollout"]["phase"] in TERMINAL:
            return state
        time.sleep(0.2)
    raise AssertionError(f"rollout still running after {timeout}s: {state}")


def ready_echo(up: UpProcess) -> dict[str, Any]:
    return up.wait_for("two echo replicas ready", lambda s: s["functions"]["echo"]["ready"] >= 2, timeout=90)


def stable_version(up: UpProcess) -> str:
    ready_echo(up)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stable = httpx.get(rollout_url(up), headers=up.headers, timeout=10).json()["stable"]
        if stable:
            return str(stable)
        time.sleep(0.2)
    raise AssertionError("the controller never learned the stable version")


def test_a_version_that_fails_a_gate_never_serves(up: UpProcess, versions: Path) -> None:
    stable = stable_version(up)
    version = f"wrong-{uuid.uuid4().hex[:6]}"
    with EchoLoad(up.url, up.headers, event_every_s=0) as load:
        time.sleep(0.5)
        start_rollout(up, model_uri=str(versions / "wrong"), version=version, steps=[50, 100], hold_s=1)
        state = wait_rollout(up)
        time.sleep(0.5)
    rollout = state["rollout"]
    assert rollout["phase"] == "failed"
    assert "golden" in rollout["reason"] and "differs" in rollout["reason"]
    answers = load.snapshot()
    assert answers and all(a.status == 200 and a.correct for a in answers)
    assert {a.version for a in answers} == {stable}
    assert state["stable"] == stable
    slots = httpx.get(f"{up.url}/wakeserve/functions/echo/slots", headers=up.admin_headers, timeout=10).json()
    for replica in slots["replicas"]:
        assert replica["slots"]["active"]["version"] == stable
        assert replica["slots"]["candidate"] is None or replica["slots"]["candidate"]["state"] != "ready"


@pytest.mark.parametrize(
    ("artifact", "reason"), [("flaky", "error rate"), ("slow", "p99 latency")], ids=["errors", "latency"]
)
def test_a_version_that_degrades_under_canary_is_rolled_back(
    up: UpProcess, versions: Path, artifact: str, reason: str
) -> None:
    stable = stable_version(up)
    version = f"{artifact}-{uuid.uuid4().hex[:6]}"
    with EchoLoad(up.url, up.headers, event_every_s=0) as load:
        time.sleep(0.5)
        start_rollout(
            up, model_uri=str(versions / artifact), version=version, steps=[25, 100], hold_s=60, min_requests=30
        )
        state = wait_rollout(up)
        rolled_back_at = time.monotonic()
        time.sleep(1.5)
    rollout = state["rollout"]
    assert rollout["phase"] == "rolled_back", rollout
    assert reason in rollout["reason"]
    assert rollout["percent"] == 0 and state["stable"] == stable
    assert rollout["step_metrics"][version]["requests"] >= 30
    answers = load.snapshot()
    # The stable version never failed; the candidate served a share of calls until the rollback, then none.
    assert all(a.status == 200 and a.correct for a in answers if a.version == stable)
    assert all(a.version == stable and a.status == 200 for a in answers if a.sent > rolled_back_at + 1.0)
    assert len([a for a in answers if a.sent > rolled_back_at + 1.0]) > 10


def test_a_good_version_is_promoted_with_no_failed_request_and_every_answer_labelled(
    up: UpProcess, versions: Path
) -> None:
    stable = stable_version(up)
    version = f"good-{uuid.uuid4().hex[:6]}"
    collector = Collector(up.settings(), up.settings().topics.results)
    try:
        with EchoLoad(up.url, up.headers, event_every_s=0.05) as load:
            time.sleep(1.0)
            # A freshly started candidate next to a warm stable version on two shared cores: one slow call in a
            # 1.5 s window is its p99, so this test allows 50 ms of slack (the latency rollback has its own test).
            start_rollout(
                up,
                model_uri=str(versions / "good"),
                version=version,
                steps=[10, 50, 100],
                hold_s=1.5,
                latency_slack_s=0.05,
            )
            state = wait_rollout(up)
            promoted_at = time.monotonic()
            time.sleep(1.5)
        results = collector.wait_for({e.attributes["id"] for e in load.events}, timeout=90)
    finally:
        collector.close()
    rollout = state["rollout"]
    assert rollout["phase"] == "promoted", rollout.get("reason")
    assert state["stable"] == version
    steps = [e["event"] for e in rollout["events"]]
    assert any("10% of new requests" in s for s in steps) and any("50% of new requests" in s for s in steps)

    answers = load.snapshot()
    assert len(answers) > 100
    failed = [a for a in answers if a.status != 200 or not a.correct]
    assert failed == []
    assert {a.version for a in answers} == {stable, version}
    assert all(a.version == version for a in answers if a.sent > promoted_at + 0.5)
    assert load.event_failures == [] and len(load.events) > 20
    labels = set()
    for event in load.events:
        (result,) = results[event.attributes["id"]]
        assert result.attributes["type"] == "dev.wakeserve.inference.result"
        sent = orjson.loads(event.data or b"")["inputs"][0]["data"]
        assert orjson.loads(result.data or b"")["outputs"][0]["data"] == sent
        assert orjson.loads(result.data or b"")["model_version"] == result.attributes["modelversion"]
        labels.add(result.attributes["modelversion"])
    assert labels <= {stable, version} and version in labels

    # Every replica serves the new version, and a replacement for a crashed one starts with it.
    pods = up.wait_for(
        "all replicas on the new version",
        lambda s: [p["version"] for p in s["functions"]["echo"]["pods"] if p["state"] == "ready"] == [version] * 2,
    )["functions"]["echo"]["pods"]
    os.kill(pods[0]["pid"], signal.SIGKILL)
    up.wait_for(
        "the replacement ready on the new version",
        lambda s: (
            sorted(
                (p["pid"] != pods[0]["pid"], str(p["version"]))
                for p in s["functions"]["echo"]["pods"]
                if p["state"] == "ready"
            )
            == [(True, version), (True, version)]
        ),
        timeout=60,
    )


def test_a_rollout_with_no_user_traffic_finishes_on_synthetic_probes(up: UpProcess, versions: Path) -> None:
    stable = stable_version(up)
    version = f"quiet-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    start_rollout(
        up,
        model_uri=str(versions / "good"),
        version=version,
        steps=[10, 100],
        hold_s=1,
        probe_after_s=1,
        min_requests=10,
    )
    # Each step waits 1 s for user requests, then one or two observations of probes suffice; the rest is
    # loading the echo candidate on two replicas.
    state = wait_rollout(up, timeout=45)
    took = time.monotonic() - started
    rollout = state["rollout"]
    assert rollout["phase"] == "promoted", rollout
    assert state["stable"] == version and took < 45
    assert rollout["basis"] == "synthetic" and "synthetic probes" in rollout["reason"]
    synthetic = rollout["synthetic_total_metrics"]
    assert synthetic[version]["requests"] >= 20 and synthetic[version]["errors"] == 0
    assert synthetic[stable]["requests"] == synthetic[version]["requests"]  # both versions probed alike
    assert synthetic[version]["p50_ms"] is not None and synthetic[stable]["p50_ms"] is not None
    assert all(m["requests"] == 0 for m in rollout["total_metrics"].values())  # none of it is user traffic
    printed = rollout_command.summary(state)
    assert "None" not in printed and "evidence: synthetic" in printed
    up.wait_for(
        "both replicas on the new version",
        lambda s: [p["version"] for p in s["functions"]["echo"]["pods"] if p["state"] == "ready"] == [version] * 2,
    )


def test_rollout_requests_are_validated_and_conflicts_refused(up: UpProcess, versions: Path) -> None:
    bad = [
        ({"model_uri": str(versions / "good")}, "version"),
        ({"version": "x", "steps": [50, 25, 100]}, "steps"),
        ({"version": "x", "steps": [10, 50]}, "last step must be 100"),
        ({"version": "x", "colour": "blue"}, "unknown field"),
    ]
    for body, problem in bad:
        response = httpx.post(rollout_url(up), json=body, headers=up.admin_headers, timeout=10)
        assert response.status_code == 400, response.text
        assert problem in response.json()["error"]
    assert httpx.post(f"{rollout_url(up)}/promote", headers=up.admin_headers, timeout=10).status_code == 409
    missing = httpx.get(f"{up.url}/wakeserve/functions/nope/rollout", headers=up.headers, timeout=10)
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_model"


def wait_phase(up: UpProcess, phase: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = httpx.get(rollout_url(up), headers=up.headers, timeout=10).json()
        if state["rollout"] and state["rollout"]["phase"] == phase:
            return state
        time.sleep(0.2)
    raise AssertionError(f"rollout never reached {phase}: {state}")


def test_manual_abort_and_manual_promote(up: UpProcess, versions: Path) -> None:
    stable = stable_version(up)
    held = {"steps": [20, 100], "hold_s": 600, "model_uri": str(versions / "good")}
    with EchoLoad(up.url, up.headers, event_every_s=0) as load:
        start_rollout(up, version=f"abort-{uuid.uuid4().hex[:6]}", **held)
        wait_phase(up, "canary")
        aborted = httpx.post(f"{rollout_url(up)}/abort", headers=up.admin_headers, timeout=10).json()
        second = f"promote-{uuid.uuid4().hex[:6]}"
        start_rollout(up, version=second, **held)
        wait_phase(up, "canary")
        promoted = httpx.post(f"{rollout_url(up)}/promote", headers=up.admin_headers, timeout=10).json()
        promoted_at = time.monotonic()
        time.sleep(1.0)
    assert aborted["rollout"]["phase"] == "aborted" and aborted["stable"] == stable
    assert promoted["rollout"]["phase"] == "promoted" and promoted["stable"] == second
    answers = load.snapshot()
    assert [a for a in answers if a.status != 200 or not a.correct] == []
    assert all(a.version == second for a in answers if a.sent > promoted_at + 0.5)


def test_a_replica_serving_a_version_the_controller_does_not_know_is_replaced(up: UpProcess, versions: Path) -> None:
    stable = stable_version(up)
    pods = [p for p in ready_echo(up)["functions"]["echo"]["pods"] if p["state"] == "ready"]
    rogue = pods[0]
    # Someone with access to one replica's admin listener swaps it behind the controller's back.
    answer = httpx.post(
        f"http://127.0.0.1:{rogue['admin_port']}/wakeserve/models/echo/slots",
        json={"model_uri": str(versions / "good"), "version": "rogue", "promote": True},
        headers=up.admin_headers,
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    status = up.wait_for(
        "the rogue replica replaced",
        lambda s: (
            rogue["pid"] not in [p["pid"] for p in s["functions"]["echo"]["pods"]]
            and [p["version"] for p in s["functions"]["echo"]["pods"] if p["state"] == "ready"] == [stable] * 2
        ),
        timeout=60,
    )
    assert all(p["version"] != "rogue" for p in status["functions"]["echo"]["pods"])


def test_a_replica_serving_the_stable_label_from_other_artifacts_is_replaced(up: UpProcess, versions: Path) -> None:
    stable = stable_version(up)
    pods = [p for p in ready_echo(up)["functions"]["echo"]["pods"] if p["state"] == "ready"]
    impostor = pods[0]
    # The same label, other files: a different digest, so a different version.
    answer = httpx.post(
        f"http://127.0.0.1:{impostor['admin_port']}/wakeserve/models/echo/slots",
        json={"model_uri": str(versions / "slow"), "version": stable, "promote": True},
        headers=up.admin_headers,
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    up.wait_for(
        "the replica with the other digest replaced",
        lambda s: (
            impostor["pid"] not in [p["pid"] for p in s["functions"]["echo"]["pods"]]
            and [p["version"] for p in s["functions"]["echo"]["pods"] if p["state"] == "ready"] == [stable] * 2
        ),
        timeout=60,
    )
