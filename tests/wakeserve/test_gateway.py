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
import orjson
import pytest
from starlette.types import ASGIApp

from core.processes import ChildProcess
from tests.support.stub_replica import StubReplica, serving
from wakeserve.activator import Activator
from wakeserve.gateway import Gateway
from wakeserve.gateway_relay import KEEPALIVE, WAITING
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


# -- streams ----------------------------------------------------------------------------------------------------
GENERATE_STREAM = "/v2/models/generator/generate_stream"
CHAT = "/openai/v1/chat/completions"
EVENTS = [b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n', b'data: {"n": 3}\n\n']


def generator_pool(ready_port: int | None) -> ReplicaPool:
    """A pool of the generator with one ready replica on ``ready_port``, or none (at zero)."""
    p = pool("generator", 0)
    if ready_port is not None:
        p.replicas.append(ready(ready_port))
    return p


def ready(port: int) -> Replica:
    return Replica("generator", 0, port, process=cast(ChildProcess, LiveProcess()), started=0.0, state=State.READY)


def stream_gateway(
    p: ReplicaPool, client: httpx.AsyncClient, *, keepalive_s: float = 0.5, hold_timeout_s: float = 10.0
) -> Gateway:
    pools = {"generator": p, "classifier": pool("classifier", 1)}
    activator = Activator(pools, lambda _: None, hold_timeout_s=hold_timeout_s)
    return Gateway(activator, None, client, lambda: {}, generative=frozenset({"generator"}), keepalive_s=keepalive_s)


async def become_ready_after(p: ReplicaPool, delay_s: float, port: int) -> None:
    """The replica of a function at zero finishes starting ``delay_s`` from now (the wake being waited on)."""
    await asyncio.sleep(delay_s)
    p.replicas.append(ready(port))
    await p.notify()


async def read_all(response: httpx.Response) -> bytes:
    async with asyncio.timeout(10):
        return b"".join([chunk async for chunk in response.aiter_raw()])


def test_a_stream_from_a_ready_replica_arrives_chunk_by_chunk_with_its_head_unchanged() -> None:
    async def scenario() -> tuple[httpx.Response, bytes, bool, bytes]:
        stub = StubReplica(EVENTS, hold_after_first=True)
        async with serving(stub) as replica_port, httpx.AsyncClient() as upstream:
            app = stream_gateway(generator_pool(replica_port), upstream).app()
            async with serving(app) as port, httpx.AsyncClient() as client:
                url = f"http://127.0.0.1:{port}{GENERATE_STREAM}"
                async with client.stream("POST", url, json={"text_input": "hi"}) as response:
                    chunks = response.aiter_raw()
                    async with asyncio.timeout(5):
                        first = await anext(chunks)
                    # The replica still holds the rest: the first event was not buffered behind it.
                    finished_before_first = stub.finished.is_set()
                    stub.release.set()
                    async with asyncio.timeout(5):
                        rest = b"".join([chunk async for chunk in chunks])
        return response, first, finished_before_first, rest

    response, first, finished_before_first, rest = asyncio.run(scenario())
    assert (first, finished_before_first) == (EVENTS[0], False)
    assert first + rest == b"".join(EVENTS)
    assert response.status_code == 200 and response.headers["x-replica"] == "stub"
    assert response.headers["content-type"] == "text/event-stream"
    assert "cache-control" not in response.headers  # the replica's head, not one the gateway made up


def test_a_client_that_leaves_mid_stream_closes_the_replicas_stream() -> None:
    async def scenario() -> tuple[bytes, int]:
        # Nothing more comes for a minute: only the client's leaving can end this stream in time.
        stub = StubReplica(EVENTS[:1], endless_every_s=60)
        async with serving(stub) as replica_port, httpx.AsyncClient() as upstream:
            gateway = stream_gateway(generator_pool(replica_port), upstream)
            async with serving(gateway.app()) as port, httpx.AsyncClient() as client:
                url = f"http://127.0.0.1:{port}{CHAT}"
                body = {"model": "generator", "stream": True, "messages": []}
                async with client.stream("POST", url, json=body) as response:
                    async with asyncio.timeout(5):
                        first = await anext(response.aiter_raw())
                async with asyncio.timeout(5):
                    await stub.disconnected.wait()
                    while gateway.activator.traffic["generator"].inflight:
                        await asyncio.sleep(0.01)
                return first, gateway.activator.pools["generator"].replicas[0].inflight

    first, replica_inflight = asyncio.run(scenario())
    assert first == EVENTS[0]
    assert replica_inflight == 0  # released as soon as the client left


def test_a_stream_asked_of_a_function_at_zero_keeps_the_client_company_until_the_replica_answers() -> None:
    async def scenario() -> tuple[httpx.Response, bytes, bool, bytes]:
        stub = StubReplica(EVENTS)
        async with serving(stub) as replica_port, httpx.AsyncClient() as upstream:
            p = generator_pool(None)
            app = stream_gateway(p, upstream, keepalive_s=0.5).app()
            async with serving(app) as port, httpx.AsyncClient() as client:
                waking = asyncio.create_task(become_ready_after(p, 1.5, replica_port))
                async with client.stream("POST", f"http://127.0.0.1:{port}{GENERATE_STREAM}", json={}) as response:
                    chunks = response.aiter_raw()
                    async with asyncio.timeout(1):
                        first = await anext(chunks)
                    answered_before_ready = not waking.done()
                    async with asyncio.timeout(10):
                        rest = b"".join([chunk async for chunk in chunks])
                await waking
        return response, first, answered_before_ready, rest

    response, first, answered_before_ready, rest = asyncio.run(scenario())
    assert (response.status_code, first, answered_before_ready) == (200, WAITING, True)
    assert response.headers["content-type"] == "text/event-stream"
    assert (response.headers["cache-control"], response.headers["x-accel-buffering"]) == ("no-cache", "no")
    before_data, data, after = rest.partition(b"data:")
    assert before_data.count(KEEPALIVE) >= 2 and before_data == KEEPALIVE * before_data.count(KEEPALIVE)
    assert data + after == b"".join(EVENTS)  # the replica's events follow, whole and in order


OPENAI_REFUSAL = {"error": {"message": "max_tokens must be at least 1", "type": "BadRequestError", "code": 400}}
V2_REFUSAL = {"error": "max_tokens must be at least 1", "code": "invalid_input", "retryable": False}


@pytest.mark.parametrize(
    ("path", "refusal", "ending"),
    [
        (CHAT, OPENAI_REFUSAL, b"data: " + orjson.dumps(OPENAI_REFUSAL) + b"\n\ndata: [DONE]\n\n"),
        (GENERATE_STREAM, V2_REFUSAL, b"data: " + orjson.dumps(V2_REFUSAL) + b"\n\n"),
    ],
    ids=["openai", "v2"],
)
def test_a_replica_that_refuses_a_stream_already_started_ends_it_with_an_error_event(
    path: str, refusal: dict[str, Any], ending: bytes
) -> None:
    async def scenario() -> tuple[httpx.Response, bytes]:
        stub = StubReplica([orjson.dumps(refusal)], status=400, headers=[(b"content-type", b"application/json")])
        async with serving(stub) as replica_port, httpx.AsyncClient() as upstream:
            p = generator_pool(None)
            app = stream_gateway(p, upstream, keepalive_s=0.2).app()
            async with serving(app) as port, httpx.AsyncClient() as client:
                waking = asyncio.create_task(become_ready_after(p, 0.5, replica_port))
                body = {"model": "generator", "stream": True, "max_tokens": 0}
                async with client.stream("POST", f"http://127.0.0.1:{port}{path}", json=body) as response:
                    content = await read_all(response)
                await waking
        return response, content

    response, content = asyncio.run(scenario())
    assert response.status_code == 200 and content.startswith(WAITING + KEEPALIVE)
    assert content.endswith(ending) and content.count(b"data:") == ending.count(b"data:")
    assert orjson.loads(ending.split(b"\n\n")[0].removeprefix(b"data: ")) == refusal


def test_a_function_that_does_not_wake_ends_the_started_stream_with_an_error_event() -> None:
    async def scenario() -> tuple[httpx.Response, bytes]:
        async with httpx.AsyncClient() as upstream:
            app = stream_gateway(generator_pool(None), upstream, keepalive_s=0.1, hold_timeout_s=0.5).app()
            async with serving(app) as port, httpx.AsyncClient() as client:
                body = {"model": "generator", "stream": True}
                async with client.stream("POST", f"http://127.0.0.1:{port}{CHAT}", json=body) as response:
                    return response, await read_all(response)

    response, content = asyncio.run(scenario())
    assert response.status_code == 200 and content.startswith(WAITING + KEEPALIVE)
    events = [line.removeprefix(b"data: ") for line in content.split(b"\n\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]" and len(events) == 2
    error = orjson.loads(events[0])["error"]
    assert (error["type"], error["code"]) == ("ServiceUnavailableError", 503)
    assert "no replica of 'generator' became ready within 0.5s" in error["message"]


def test_a_call_that_is_not_a_stream_waits_for_a_waking_function_without_keep_alives() -> None:
    upstream = Upstream()
    p = generator_pool(None)
    client = httpx.AsyncClient(transport=httpx.MockTransport(upstream.handle))
    app = stream_gateway(p, client, keepalive_s=0.01, hold_timeout_s=0.1).app()
    response = call(app, "POST", CHAT, json={"model": "generator", "stream": False})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "ServiceUnavailableError"  # OpenAI's shape, not an event


def test_the_model_list_names_every_generative_function_and_wakes_none() -> None:
    upstream = Upstream()
    client = httpx.AsyncClient(transport=httpx.MockTransport(upstream.handle))
    pools = {"generator": generator_pool(None), "classifier": pool("classifier", 1)}
    activator = Activator(pools, lambda _: None)
    gateway_ = Gateway(activator, None, client, lambda: {}, generative=frozenset({"generator", "not-served"}))
    response = call(gateway_.app(TOKEN), "GET", "/openai/v1/models", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    listing = response.json()
    assert (listing["object"], [m["id"] for m in listing["data"]]) == ("list", ["generator"])
    (model,) = listing["data"]
    assert (model["object"], model["owned_by"], isinstance(model["created"], int)) == ("model", "wakeserve", True)
    assert upstream.seen == [] and activator.traffic["generator"].requests == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "kind", "says"),
    [
        ("POST", CHAT, b'{"model": "translator"}', 404, "NotFoundError", "'translator' is not a generative function"),
        ("POST", "/openai/v1/completions", b'{"model": "classifier"}', 404, "NotFoundError", "known: generator"),
        ("POST", CHAT, b"{not json", 400, "BadRequestError", "body is not JSON"),
        ("POST", CHAT, b'{"messages": []}', 400, "BadRequestError", '"model"'),
        ("POST", CHAT, b'["generator"]', 400, "BadRequestError", '"model"'),
        ("GET", "/openai/v1/models/translator", b"", 404, "NotFoundError", "'translator'"),
    ],
    ids=["unknown-model", "not-generative", "not-json", "no-model", "not-an-object", "get-unknown-model"],
)
def test_openai_refusals_speak_openais_error_shape(
    method: str, path: str, body: bytes, status: int, kind: str, says: str
) -> None:
    upstream = Upstream()
    client = httpx.AsyncClient(transport=httpx.MockTransport(upstream.handle))
    response = call(stream_gateway(generator_pool(None), client).app(), method, path, content=body)
    assert response.status_code == status and response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (set(error), error["type"], error["code"]) == ({"message", "type", "code"}, kind, status)
    assert says in error["message"]
    assert upstream.seen == []


def test_an_openai_call_to_a_ready_replica_is_forwarded_as_it_is() -> None:
    upstream = Upstream()
    client = httpx.AsyncClient(transport=httpx.MockTransport(upstream.handle))
    p = pool("generator", 1)
    response = call(stream_gateway(p, client).app(), "GET", "/openai/v1/models/generator?x=1")
    assert response.status_code == 200 and response.json()["model_name"] == "classifier"  # the stub's answer
    (sent,) = upstream.seen
    assert str(sent.url) == "http://127.0.0.1:9000/openai/v1/models/generator?x=1"
