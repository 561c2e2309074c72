"""The inference port behind the inference token (in process): probes and scrapes open, everything else not."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import CollectorRegistry

from core.listener import ListenerLimits
from functions.serving.server import PredictorServer, inference_listener, is_open

TOKEN = "inference-token-for-tests"


@pytest.mark.parametrize(
    ("path", "open_"),
    [
        ("/", True),
        ("/metrics", True),
        ("/v2/health/live", True),
        ("/v2/health/ready", True),
        ("/v2/models/echo/ready", True),
        ("/v2/models/echo/versions/1/ready", True),
        ("/v2", False),
        ("/v2/models/echo", False),
        ("/v2/models/echo/infer", False),
        ("/v2/models/echo/versions/1/infer", False),
        ("/cloudevents", False),
        ("/v2/models/ready/infer", False),
    ],
)
def test_which_paths_need_no_token(path: str, open_: bool) -> None:
    assert is_open(path) is open_


@pytest.mark.parametrize(
    ("method", "path", "authorization", "status"),
    [
        ("POST", "/v2/models/echo/infer", None, 401),
        ("POST", "/v2/models/echo/infer", "Bearer wrong", 401),
        ("POST", "/v2/models/echo/infer", f"Bearer {TOKEN}", 400),  # through to the route, which reads the body
        ("GET", "/v2/models/echo", None, 401),
        ("POST", "/cloudevents", None, 401),
        ("GET", "/v2/health/live", None, 200),
        ("GET", "/metrics", None, 200),
    ],
)
def test_the_inference_port_requires_the_token(method: str, path: str, authorization: str | None, status: int) -> None:
    server = PredictorServer([], CollectorRegistry(), host="127.0.0.1", http_port=0, grpc_port=0)
    app = inference_listener(server.app, ListenerLimits(), TOKEN)
    headers = {"authorization": authorization} if authorization else {}

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replica") as client:
            return await client.request(method, path, content=b"{}", headers=headers)

    response = asyncio.run(go())
    assert response.status_code == status, response.text
    if status == 401:
        assert response.json() == {
            "error": "the inference API needs a valid bearer token",
            "code": "unauthorized",
            "retryable": False,
        }
