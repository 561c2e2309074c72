"""Starlette's own refusals and unexpected exceptions, folded into the error root and answered as JSON."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import ConflictError
from core.starlette_errors import exception_handlers, from_http_exception


@pytest.mark.parametrize(
    ("exc", "status", "code", "message", "retryable", "headers"),
    [
        (HTTPException(404), 404, "not_found", "Not Found", False, {}),
        (HTTPException(404, "no such thing"), 404, "not_found", "no such thing", False, {}),
        (
            HTTPException(405, headers={"Allow": "GET"}),
            405,
            "method_not_allowed",
            "Method Not Allowed",
            False,
            {"Allow": "GET"},
        ),
        (HTTPException(400, "bad"), 400, "bad_request", "bad", False, {}),
        (HTTPException(501), 501, "not_implemented", "Not Implemented", False, {}),
        (HTTPException(503), 503, "service_unavailable", "Service Unavailable", True, {}),
    ],
    ids=["404", "404-detail", "405-allow", "400", "501", "503"],
)
def test_from_http_exception(
    exc: HTTPException, status: int, code: str, message: str, retryable: bool, headers: dict[str, str]
) -> None:
    err = from_http_exception(exc)
    assert (err.status, err.code, err.message, err.retryable, err.headers) == (
        status,
        code,
        message,
        retryable,
        headers,
    )


async def _conflict(_: Request) -> Response:
    raise ConflictError("nothing to promote")


async def _bug(_: Request) -> Response:
    raise KeyError("internal detail")


APP = Starlette(
    routes=[Route("/conflict", _conflict, methods=["POST"]), Route("/bug", _bug)],
    exception_handlers=dict(exception_handlers()),
)


def call(method: str, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=APP, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.request(method, path)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "header"),
    [
        ("POST", "/conflict", 409, {"error": "nothing to promote", "code": "conflict", "retryable": False}, None),
        ("GET", "/nowhere", 404, {"error": "Not Found", "code": "not_found", "retryable": False}, None),
        (
            "GET",
            "/conflict",
            405,
            {"error": "Method Not Allowed", "code": "method_not_allowed", "retryable": False},
            ("allow", "POST"),
        ),
        (
            "GET",
            "/bug",
            500,
            {"error": "internal error handling /bug: KeyError", "code": "internal", "retryable": False},
            None,
        ),
    ],
    ids=["raised", "no-route", "wrong-method", "unexpected"],
)
def test_a_starlette_app_answers_every_failure_as_json(
    method: str, path: str, status: int, body: dict[str, object], header: tuple[str, str] | None
) -> None:
    response = call(method, path)
    assert (response.status_code, response.json()) == (status, body)
    assert response.headers["content-type"] == "application/json"
    if header is not None:
        assert response.headers[header[0]] == header[1]
