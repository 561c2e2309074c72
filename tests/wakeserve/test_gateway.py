"""The gateway in process (httpx.ASGITransport): every refusal is the one JSON error answer.

Replicas are plain records whose HTTP side is an httpx.MockTransport, so each test sees exactly what reached
a replica. Real replica processes behind the gateway are exercised in tests/integration/test_up.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from starlette.types import ASGIApp

from core.processes import ChildProcess
from wakeserve.activator import Activator
from wakeserve.gateway import Gateway
from wakeserve.pool import Replica, ReplicaPool, State
from wakeserve.rollout import RolloutController

TOKEN = "s3cret"
INFER = "/v2/models/classifier/infer"


class LiveProcess:
    """Stands in for a replica's process that is still running."""

    pid = 4242

    def alive(self) -> bool:
        return True


@dataclass
class Upstream:
    """What the replicas were sent, and how they answer."""

    fail: bool = False
    seen: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.fail:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"model_name": "classifier", "echo": request.content.decode()})


def pool(function: str, ready: int) -> ReplicaPool:
    p = ReplicaPool(function, lambda port: [], env={}, log_dir=Path("/nonexistent"), client=cast(Any, None))
    for index in range(ready):
        process = cast(ChildProcess, LiveProcess())
        p.replicas.append(Replica(function, index, 9000 + index, process=process, started=0.0, state=State.READY))
    return p


ADMIN = "admin-token-for-tests"
AS_ADMIN = {"authorization": f"Bearer {ADMIN}"}


def gateway(
    upstream: Upstream,
    *,
    ready: int = 1,
    with_rollouts: bool = False,
    max_body_bytes: int = 64,
    admin_token: str | None = ADMIN,
) -> Gateway:
    pools = {"classifier": pool("classifier", ready)}
    activator = Activator(pools, lambda _: None, hold_timeout_s=0.1)
    client = httpx.AsyncClient(transport=httpx.MockTransport(upstream.handle))
    rollouts = {"classifier": RolloutController(pools["classifier"], client)} if with_rollouts else None
    return Gateway(
        activator,
        None,
        client,
        lambda: {"functions": {}},
        max_body_bytes=max_body_bytes,
        rollouts=rollouts,
        admin_token=admin_token,
    )


def call(app: ASGIApp, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def assert_error(response: httpx.Response, status: int, code: str, says: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["code"], set(body)) == (code, {"error", "code", "retryable"})
    assert says in body["error"]


@pytest.mark.parametrize(
    ("token", "path", "authorization", "status"),
    [
        (None, INFER, None, 200),
        (TOKEN, INFER, f"Bearer {TOKEN}", 200),
        (TOKEN, INFER, None, 401),
        (TOKEN, INFER, "Bearer wrong", 401),
        (TOKEN, INFER, TOKEN, 401),  # the scheme is part of the credential
        (TOKEN, "/wakeserve/status", None, 401),
        (TOKEN, "/events", None, 401),
        (TOKEN, "/v2/health/ready", None, 200),
        (TOKEN, "/healthz", None, 200),
    ],
    ids=["no-token-configured", "right", "missing", "wrong", "no-scheme", "status", "events", "ready", "healthz"],
)
def test_bearer_token(token: str | None, path: str, authorization: str | None, status: int) -> None:
    upstream = Upstream()
    headers = {"authorization": authorization} if authorization else {}
    method = "POST" if path in (INFER, "/events") else "GET"
    response = call(gateway(upstream).app(token), method, path, content=b"{}", headers=headers)
    if status == 401:
        assert_error(response, 401, "unauthorized", "bearer token")
        assert response.headers["www-authenticate"] == 'Bearer realm="wakeserve"'
        assert upstream.seen == []  # nothing reached a replica
    else:
        assert response.status_code == status, response.text


def test_a_forwarded_call_drops_the_gateway_credential_and_returns_the_replica_answer() -> None:
    upstream = Upstream()
    headers = {"authorization": f"Bearer {TOKEN}", "x-request-id": "r1"}
    response = call(
        gateway(upstream).app(TOKEN), "POST", INFER + "?trace=1", content=b'{"inputs": []}', headers=headers
    )
    assert response.json() == {"model_name": "classifier", "echo": '{"inputs": []}'}
    (sent,) = upstream.seen
    assert str(sent.url) == "http://127.0.0.1:9000" + INFER + "?trace=1"
    assert "authorization" not in sent.headers and sent.headers["x-request-id"] == "r1"


async def _chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 16):
        yield b"x" * 16


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"x" * 64, 200),
        (b"x" * 65, 413),  # declared by content-length
        (lambda: _chunks(64), 200),
        (lambda: _chunks(80), 413),  # chunked: counted while it streams
    ],
    ids=["at-limit", "declared-over", "streamed-at-limit", "streamed-over"],
)
def test_body_limit(content: bytes | Callable[[], AsyncIterator[bytes]], status: int) -> None:
    upstream = Upstream()
    body = content() if callable(content) else content
    response = call(gateway(upstream, max_body_bytes=64).app(), "POST", INFER, content=body)
    if status == 413:
        assert_error(response, 413, "payload_too_large", "over 64 bytes")
        assert upstream.seen == []
    else:
        assert response.status_code == 200 and len(upstream.seen[0].content) == 64


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "says"),
    [
        ("POST", "/v2/models/translator/infer", 404, "unknown_model", "'translator' is not served here"),
        ("POST", "/events", 404, "not_found", "no event ingress"),
        ("GET", "/wakeserve/functions/translator/rollout", 404, "unknown_model", "'translator'"),
        ("POST", "/wakeserve/functions/classifier/rollout/pause", 404, "not_found", "unknown rollout action 'pause'"),
        ("POST", "/wakeserve/functions/classifier/rollout/promote", 409, "conflict", "no rollout of classifier"),
        ("POST", "/wakeserve/functions/classifier/rollout", 400, "invalid_input", "body is not JSON"),
        ("GET", "/nowhere", 404, "not_found", "Not Found"),
        ("DELETE", INFER, 405, "method_not_allowed", "Method Not Allowed"),
    ],
    ids=[
        "unknown-function",
        "no-ingress",
        "rollout-unknown-function",
        "unknown-action",
        "conflict",
        "bad-json",
        "no-route",
        "wrong-method",
    ],
)
def test_refusals_are_json_errors(method: str, path: str, status: int, code: str, says: str) -> None:
    upstream = Upstream()
    response = call(gateway(upstream, with_rollouts=True).app(), method, path, content=b"{not json", headers=AS_ADMIN)
    assert_error(response, status, code, says)
    assert upstream.seen == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/wakeserve/functions/classifier/rollout"),
        ("POST", "/wakeserve/functions/classifier/rollout/promote"),
        ("POST", "/wakeserve/functions/classifier/rollout/abort"),
        ("GET", "/wakeserve/functions/classifier/slots"),
    ],
    ids=["start", "promote", "abort", "slots"],
)
@pytest.mark.parametrize(
    ("admin_token", "gateway_token", "headers", "status", "code"),
    [
        (ADMIN, None, {}, 401, "unauthorized"),
        (ADMIN, None, {"authorization": "Bearer guess"}, 401, "unauthorized"),
        (ADMIN, "gateway-token-for-tests", {"authorization": "Bearer gateway-token-for-tests"}, 401, "unauthorized"),
        (None, None, AS_ADMIN, 403, "forbidden"),
        (ADMIN, "gateway-token-for-tests", AS_ADMIN, None, None),
        (ADMIN, None, AS_ADMIN, None, None),
    ],
    ids=[
        "no-token",
        "wrong-token",
        "gateway-token-is-not-enough",
        "no-admin-token-configured",
        "admin-token-passes-both",
        "admin",
    ],
)
def test_what_changes_replicas_needs_the_admin_token(
    method: str,
    path: str,
    admin_token: str | None,
    gateway_token: str | None,
    headers: dict[str, str],
    status: int | None,
    code: str | None,
) -> None:
    upstream = Upstream()
    app = gateway(upstream, with_rollouts=True, admin_token=admin_token).app(gateway_token)
    response = call(app, method, path, json={"version": "v2"}, headers=headers)
    if status is None:
        assert response.status_code not in (401, 403), response.text
    else:
        assert_error(response, status, code or "", "")


def test_reading_a_rollout_needs_no_admin_token() -> None:
    response = call(gateway(Upstream(), with_rollouts=True).app(), "GET", "/wakeserve/functions/classifier/rollout")
    assert response.status_code == 200 and response.json()["function"] == "classifier"


def test_replicas_that_fail_are_retried_then_answered_503_with_retry_after() -> None:
    upstream = Upstream(fail=True)
    response = call(gateway(upstream).app(), "POST", INFER, content=b"{}")
    assert_error(response, 503, "unavailable", "replicas of 'classifier' failed: ConnectError")
    assert response.headers["retry-after"] == "1"
    assert len(upstream.seen) == 3  # the gateway's attempts


def test_a_function_that_does_not_wake_in_time_is_answered_503_with_retry_after() -> None:
    upstream = Upstream()
    response = call(gateway(upstream, ready=0).app(), "POST", INFER, content=b"{}")
    assert_error(response, 503, "overloaded", "no replica of 'classifier' became ready within 0.1s")
    assert response.json()["retryable"] is True and response.headers["retry-after"] == "1"


def test_a_forwarded_call_carries_the_internal_inference_token_instead_of_the_clients() -> None:
    upstream = Upstream()
    pools = {"classifier": pool("classifier", 1)}
    client = httpx.AsyncClient(transport=httpx.MockTransport(upstream.handle))
    activator = Activator(pools, lambda _: None, hold_timeout_s=0.1)
    internal = Gateway(activator, None, client, lambda: {}, inference_token="internal-token")
    response = call(internal.app(TOKEN), "POST", INFER, content=b"{}", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    (sent,) = upstream.seen
    assert sent.headers["authorization"] == "Bearer internal-token"


@pytest.mark.parametrize(
    ("path", "size", "status"),
    [
        ("/wakeserve/functions/classifier/rollout", 64 * 1024 + 1, 413),
        ("/wakeserve/functions/classifier/rollout", 64 * 1024, 400),  # read, then refused as not JSON
    ],
    ids=["rollout-over-64KiB", "rollout-at-64KiB"],
)
def test_rollout_bodies_have_their_own_limit(path: str, size: int, status: int) -> None:
    upstream = Upstream()
    app = gateway(upstream, with_rollouts=True, max_body_bytes=1024 * 1024).app()
    response = call(app, "POST", path, content=b"{" * size, headers=AS_ADMIN)
    assert response.status_code == status, response.text
    if status == 413:
        assert_error(response, 413, "payload_too_large", "over 65536 bytes")
