"""Under ``wakeserve up`` a replica's inference port answers only the gateway, which adds the internal token."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.load import echo_body
from tests.support.up import start_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GATEWAY_TOKEN = "gateway-token-for-tests"


def test_a_replica_port_refuses_calls_around_the_gateway(tmp_path: Path) -> None:
    up = start_up(tmp_path, token=GATEWAY_TOKEN, echo_min_replicas=1)
    try:
        status = up.wait_for("echo ready", lambda s: any(p["state"] == "ready" for p in s["functions"]["echo"]["pods"]))
        port = next(p["port"] for p in status["functions"]["echo"]["pods"] if p["state"] == "ready")
        replica = f"http://127.0.0.1:{port}"
        body = echo_body(7)

        through = httpx.post(f"{up.url}/v2/models/echo/infer", json=body, headers=up.headers, timeout=60)
        assert through.status_code == 200, through.text
        assert through.json()["outputs"][0]["data"] == body["inputs"][0]["data"]  # type: ignore[index]

        for headers in ({}, up.headers, up.admin_headers, {"authorization": "Bearer guessed"}):
            direct = httpx.post(f"{replica}/v2/models/echo/infer", json=body, headers=headers, timeout=10)
            assert direct.status_code == 401, (headers, direct.text)
            assert direct.json()["code"] == "unauthorized"
            assert direct.headers["www-authenticate"] == 'Bearer realm="wakeserve"'
        for path in ("/v2/models/echo", "/v2"):
            assert httpx.get(f"{replica}{path}", timeout=10).status_code == 401, path
        refused = httpx.post(f"{replica}/cloudevents", content=b"{}", timeout=10)
        assert refused.status_code == 401

        # Probes and scrapes carry no credential and stay open.
        for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/echo/ready", "/metrics"):
            assert httpx.get(f"{replica}{path}", timeout=10).status_code == 200, path
    finally:
        up.process.stop()
