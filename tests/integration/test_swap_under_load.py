"""Hot swap on a real replica saturated by a foreign client (tritonclient HTTP, four clients in a closed loop):
a candidate as fast as the active version passes its latency gate and is promoted without a failed request,
a slower one still fails that gate under the same load."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.closed_loop import ClosedLoop, echo_inputs, text_inputs
from tests.support.replicas import Replica, start_replica

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SWAP_BOUND_S = 120  # docs/rollouts.md: a swap under saturation finishes within this on a two-core machine


@pytest.fixture(scope="module")
def echo_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("echo-versions")
    for name, config in {"same": {}, "slow": {"delay_ms": 30}}.items():
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps(config))
    return root


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    # As the foreign client would find it: `wakeserve serve classifier` with its defaults.
    replica = start_replica("classifier", tmp_path_factory.mktemp("swap-classifier"))
    yield replica
    replica.process.stop()


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory, echo_versions: Path) -> Iterator[Replica]:
    env = {"WAKESERVE_MODEL_URI_ALLOWLIST": str(echo_versions)}
    replica = start_replica("echo", tmp_path_factory.mktemp("swap-echo"), "--torch-threads", "1", env=env)
    yield replica
    replica.process.stop()


def slots_url(replica: Replica, model: str) -> str:
    return f"{replica.admin_url}/wakeserve/models/{model}/slots"


def swap(replica: Replica, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Load a candidate through the admin listener; its slot once promoted or failed, and how long that took."""
    started = time.monotonic()
    answer = httpx.post(slots_url(replica, model), json=body, timeout=10)
    assert answer.status_code == 202, answer.text
    while time.monotonic() - started < SWAP_BOUND_S:
        slots = httpx.get(slots_url(replica, model), timeout=10).json()
        candidate, active = slots["candidate"], slots["active"]
        if candidate is not None and candidate["state"] == "failed":
            return candidate, time.monotonic() - started
        if active["version"] == body["version"]:
            return active, time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"no verdict within {SWAP_BOUND_S}s: {slots}")


def latency_gate(slot: dict[str, Any]) -> dict[str, Any]:
    (gate,) = [g for g in slot["gates"] if g["name"] == "latency"]
    return dict(gate)


def test_a_candidate_with_the_same_artifacts_is_promoted_under_saturation(classifier: Replica) -> None:
    # A first swap with no traffic: the active version has been timed idle once, and that must not matter later.
    idle, _ = swap(classifier, "classifier", {"version": "v2", "promote": True})
    assert idle["state"] == "active", idle["error"]
    with ClosedLoop(f"127.0.0.1:{classifier.http_port}", "classifier", text_inputs, clients=4) as load:
        load.wait_for("steady traffic", lambda calls: len(calls) >= 100)
        slot, took = swap(classifier, "classifier", {"version": "v3", "promote": True})
        promoted_at = time.monotonic()
        load.wait_for("answers from v3", lambda calls: sum(c.sent > promoted_at for c in calls) >= 50)
    gate = latency_gate(slot)
    assert slot["state"] == "active" and slot["version"] == "v3", slot["error"]
    assert gate["passed"] and not gate["skipped"], gate["detail"]
    assert took < SWAP_BOUND_S
    calls = load.snapshot()
    assert [c for c in calls if not c.ok] == []
    assert {c.version for c in calls} == {"v2", "v3"}
    assert all(c.version == "v3" for c in calls if c.sent > promoted_at + 0.5)


def test_a_slower_candidate_fails_its_latency_gate_under_the_same_load(echo: Replica, echo_versions: Path) -> None:
    with ClosedLoop(f"127.0.0.1:{echo.http_port}", "echo", echo_inputs, clients=4) as load:
        load.wait_for("steady traffic", lambda calls: len(calls) >= 200)
        same, _ = swap(echo, "echo", {"model_uri": str(echo_versions / "same"), "version": "e2", "promote": True})
        slow, _ = swap(echo, "echo", {"model_uri": str(echo_versions / "slow"), "version": "e3", "promote": True})
        answered_after = time.monotonic()
        load.wait_for("answers after the verdict", lambda calls: sum(c.sent > answered_after for c in calls) >= 50)
    assert same["state"] == "active" and latency_gate(same)["passed"], same
    gate = latency_gate(slow)
    assert slow["state"] == "failed" and not gate["passed"] and "latency" in slow["error"], slow
    assert [g["name"] for g in slow["gates"] if not g["passed"]] == ["latency"]
    calls = load.snapshot()
    assert [c for c in calls if not c.ok] == []
    assert "e3" not in {c.version for c in calls}
    assert all(c.version == "e2" for c in calls if c.sent > answered_after)
