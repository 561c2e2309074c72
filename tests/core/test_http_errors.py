"""The one translation of an error into an HTTP answer, once per status, for Starlette and raw ASGI."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import orjson
import pytest

from core.errors import (
    ConflictError,
    ExpiredError,
    InvalidInputError,
    NotFoundError,
    NotImplementedFeatureError,
    OverloadedError,
    PayloadTooLargeError,
    TransientError,
    UnauthorizedError,
    WakeserveError,
)
from core.http_errors import error_response, send_error

# error, status, code, retryable, headers the answer must carry besides content-type and content-length
CASES: list[tuple[WakeserveError, int, str, bool, dict[str, str]]] = [
    (InvalidInputError("input 'x' has datatype INT32"), 400, "invalid_input", False, {}),
    (UnauthorizedError("no token"), 401, "unauthorized", False, {"www-authenticate": 'Bearer realm="wakeserve"'}),
    (NotFoundError("no route /x"), 404, "not_found", False, {}),
    (ExpiredError("deadline passed"), 408, "expired", False, {}),
    (ConflictError("a rollout is running"), 409, "conflict", False, {}),
    (PayloadTooLargeError("over 10 bytes"), 413, "payload_too_large", False, {}),
    (WakeserveError("internal error"), 500, "internal", False, {}),
    (NotImplementedFeatureError("no such extension"), 501, "not_implemented", False, {}),
    (OverloadedError("queue full"), 503, "overloaded", True, {"retry-after": "1"}),
    (TransientError("S3 timed out"), 503, "unavailable", True, {"retry-after": "1"}),
]
IDS = [f"{status}-{code}" for _, status, code, _, _ in CASES]


def expected_body(err: WakeserveError, code: str, retryable: bool) -> dict[str, Any]:
    return {"error": err.message, "code": code, "retryable": retryable}


@pytest.mark.parametrize(("err", "status", "code", "retryable", "extra"), CASES, ids=IDS)
def test_error_response(err: WakeserveError, status: int, code: str, retryable: bool, extra: dict[str, str]) -> None:
    response = error_response(err)
    headers = {k.decode(): v.decode() for k, v in response.raw_headers}
    assert response.status_code == status
    assert orjson.loads(response.body) == expected_body(err, code, retryable)
    assert headers == {
        "content-type": "application/json",
        "content-length": str(len(response.body)),
        **extra,
    }


@pytest.mark.parametrize(("err", "status", "code", "retryable", "extra"), CASES, ids=IDS)
def test_send_error(err: WakeserveError, status: int, code: str, retryable: bool, extra: dict[str, str]) -> None:
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(send_error(send, err))
    start, body = sent
    assert (start["type"], start["status"], body["type"]) == ("http.response.start", status, "http.response.body")
    assert orjson.loads(body["body"]) == expected_body(err, code, retryable)
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert headers == {"content-type": "application/json", "content-length": str(len(body["body"])), **extra}


def test_retry_after_is_absent_unless_a_retry_may_succeed() -> None:
    for err, *_ in CASES:
        names = {k for k, _ in error_response(err).raw_headers}
        assert (b"retry-after" in names) == err.retryable
