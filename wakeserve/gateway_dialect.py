"""The two shapes a gateway error takes: the project's own document, or OpenAI's on the OpenAI routes.

Every error still starts as a :class:`core.errors.WakeserveError`; this is where it is written out, as a JSON
answer before a stream starts or as the last Server-Sent Events of a stream that already has.
"""

from __future__ import annotations

import enum
from http import HTTPStatus
from typing import Any

import orjson
from starlette.responses import Response

from core.errors import WakeserveError
from core.http_errors import Send, error_headers, error_response, send_error

DONE = b"data: [DONE]\n\n"

# OpenAI's clients name their exceptions by status; its error documents carry that name as their type.
_OPENAI_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    503: "ServiceUnavailableError",
}


def openai_type(status: int) -> str:
    return _OPENAI_TYPES.get(status, "BadRequestError" if status < 500 else "InternalServerError")


def event(document: object) -> bytes:
    """One SSE event carrying ``document`` as JSON."""
    return b"data: " + orjson.dumps(document) + b"\n\n"


def upstream_error(status: int, body: bytes) -> WakeserveError:
    """The error a replica answered with (either shape, or not JSON at all), as the error root."""
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    detail = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(detail, dict):
        message = str(detail.get("message", ""))
    elif isinstance(detail, str):
        message = detail
    else:
        message = body[:200].decode("utf-8", "replace").strip()
    err = WakeserveError(message or HTTPStatus(status).phrase)
    err.status = status
    code = doc.get("code") if isinstance(doc, dict) else None
    err.code = code if isinstance(code, str) else HTTPStatus(status).phrase.lower().replace(" ", "_")
    retryable = doc.get("retryable") if isinstance(doc, dict) else None
    err.retryable = retryable if isinstance(retryable, bool) else status in (429, 503)
    return err


class Dialect(enum.Enum):
    """Whose error shape a route speaks: ``{"error", "code", "retryable"}`` or OpenAI's ``{"error": {...}}``."""

    V2 = "v2"
    OPENAI = "openai"

    def document(self, err: WakeserveError) -> dict[str, object]:
        if self is Dialect.V2:
            return err.to_json()
        return {"error": {"message": err.message, "type": openai_type(err.status), "code": err.status}}

    def response(self, err: WakeserveError) -> Response:
        """The JSON answer of ``err`` on a route that has not started answering."""
        if self is Dialect.V2:
            return error_response(err)
        response = Response(orjson.dumps(self.document(err)), status_code=err.status)
        response.raw_headers = [*error_headers(err), *(h for h in response.raw_headers if h[0] != b"content-type")]
        return response

    async def send_error(self, send: Send, err: WakeserveError) -> None:
        if self is Dialect.V2:
            await send_error(send, err)
        else:
            await self.response(err)({"type": "http"}, _no_receive, send)

    def error_events(self, err: WakeserveError) -> bytes:
        """The events that end a stream with ``err``: OpenAI's clients also wait for ``[DONE]``."""
        return self._ending(self.document(err))

    def upstream_error_events(self, status: int, body: bytes) -> bytes:
        """The events that end a stream whose replica answered ``status`` with ``body`` instead of events."""
        try:
            doc: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        # A replica's error already in this dialect's shape is passed on as it is.
        if self is Dialect.OPENAI and isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            return self._ending({"error": doc["error"]})
        if self is Dialect.V2 and isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return self._ending(doc)
        return self.error_events(upstream_error(status, body))

    def _ending(self, document: object) -> bytes:
        return event(document) + (DONE if self is Dialect.OPENAI else b"")


async def _no_receive() -> dict[str, Any]:
    raise RuntimeError("an error answer reads nothing")
