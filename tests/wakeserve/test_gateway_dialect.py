"""How a replica's error becomes the last events of a stream the gateway already started, per dialect."""

from __future__ import annotations

import orjson
import pytest

from core.errors import OverloadedError
from wakeserve.gateway_dialect import DONE, Dialect, openai_type

OPENAI_DOC = {"error": {"message": "too long", "type": "BadRequestError", "code": 400}}
V2_DOC = {"error": "too long", "code": "invalid_input", "retryable": False}


def events(dialect: Dialect, status: int, body: bytes) -> list[object]:
    raw = dialect.upstream_error_events(status, body)
    assert raw.endswith(b"\n\n")
    return [
        "[DONE]" if part == b"data: [DONE]" else orjson.loads(part.removeprefix(b"data: "))
        for part in raw.split(b"\n\n")
        if part
    ]


@pytest.mark.parametrize(
    ("dialect", "status", "body", "expected"),
    [
        (Dialect.OPENAI, 400, orjson.dumps(OPENAI_DOC), [OPENAI_DOC, "[DONE]"]),
        (
            Dialect.OPENAI,
            400,
            orjson.dumps(V2_DOC),
            [{"error": {"message": "too long", "type": "BadRequestError", "code": 400}}, "[DONE]"],
        ),
        (
            Dialect.OPENAI,
            502,
            b"<html>bad gateway</html>",
            [{"error": {"message": "<html>bad gateway</html>", "type": "InternalServerError", "code": 502}}, "[DONE]"],
        ),
        (Dialect.V2, 400, orjson.dumps(V2_DOC), [V2_DOC]),
        (Dialect.V2, 404, orjson.dumps(OPENAI_DOC), [{"error": "too long", "code": "not_found", "retryable": False}]),
        (Dialect.V2, 503, b"", [{"error": "Service Unavailable", "code": "service_unavailable", "retryable": True}]),
    ],
    ids=["openai-as-is", "openai-from-v2", "openai-not-json", "v2-as-is", "v2-from-openai", "v2-empty"],
)
def test_a_replicas_error_ends_the_stream_in_the_routes_dialect(
    dialect: Dialect, status: int, body: bytes, expected: list[object]
) -> None:
    assert events(dialect, status, body) == expected


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "BadRequestError"),
        (404, "NotFoundError"),
        (413, "BadRequestError"),
        (429, "RateLimitError"),
        (500, "InternalServerError"),
        (503, "ServiceUnavailableError"),
    ],
)
def test_openai_error_types_follow_the_status(status: int, kind: str) -> None:
    assert openai_type(status) == kind


def test_an_error_of_the_gateway_itself_ends_an_openai_stream_with_done() -> None:
    raw = Dialect.OPENAI.error_events(OverloadedError("no replica in time"))
    first, done = raw.split(b"\n\n", 1)
    assert done == DONE
    assert orjson.loads(first.removeprefix(b"data: ")) == {
        "error": {"message": "no replica in time", "type": "ServiceUnavailableError", "code": 503}
    }
    assert (
        Dialect.V2.error_events(OverloadedError("x")) == b'data: {"error":"x","code":"overloaded","retryable":true}\n\n'
    )
