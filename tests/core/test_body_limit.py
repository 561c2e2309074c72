"""``core.body_limit.BodyLimit`` in process: declared and streamed bodies, whatever the wrapped app does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.body_limit import BodyLimit, declared_length
from core.errors import WakeserveError
from core.starlette_errors import exception_handlers

LIMIT = 64


async def echo_length(request: Request) -> Response:
    return JSONResponse({"read": len(await request.body())})


async def swallowing(scope: Any, receive: Any, send: Any) -> None:
    """A raw app that turns every failure into its own 400: the limit's 413 must still be what is answered."""
    try:
        while (await receive()).get("more_body"):
            pass
    except Exception:
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"mine"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


STARLETTE = Starlette(routes=[Route("/", echo_length, methods=["POST"])], exception_handlers=dict(exception_handlers()))


async def chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 16):
        yield b"x" * 16


def post(app: Any, content: bytes | Callable[[], AsyncIterator[bytes]], limit_for: Any = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=BodyLimit(app, LIMIT, limit_for))
        async with httpx.AsyncClient(transport=transport, base_url="http://listener") as client:
            return await client.post("/", content=content() if callable(content) else content)

    return asyncio.run(go())


@pytest.mark.parametrize("app", [STARLETTE, swallowing], ids=["starlette", "raw-app-that-swallows-errors"])
@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"x" * LIMIT, 200),
        (b"x" * (LIMIT + 1), 413),
        (lambda: chunks(LIMIT), 200),
        (lambda: chunks(LIMIT + 16), 413),
        (b"", 200),
    ],
    ids=["declared-at-limit", "declared-over", "streamed-at-limit", "streamed-over", "empty"],
)
def test_bodies_over_the_limit_are_413(app: Any, content: Any, status: int) -> None:
    response = post(app, content)
    assert response.status_code == status, response.text
    if status == 413:
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"error": f"request body is over {LIMIT} bytes", "code": "payload_too_large",
                                   "retryable": False}  # fmt: skip


def test_a_declared_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    called: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope["path"])
        raise WakeserveError("not reached")

    assert post(app, b"x" * (LIMIT + 1)).status_code == 413
    assert called == []


def test_a_path_may_have_its_own_limit() -> None:
    def limit_for(path: str) -> int:
        return 8 if path == "/" else LIMIT

    response = post(STARLETTE, b"x" * 9, limit_for)
    assert (response.status_code, response.json()["error"]) == (413, "request body is over 8 bytes")


@pytest.mark.parametrize(
    ("headers", "length"),
    [([(b"content-length", b"12")], 12), ([], None), ([(b"content-length", b"twelve")], None)],
    ids=["declared", "absent", "not-a-number"],
)
def test_declared_length(headers: list[tuple[bytes, bytes]], length: int | None) -> None:
    assert declared_length(headers) == length
