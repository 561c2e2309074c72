"""The one translation of an error into an HTTP answer, used by every HTTP listener.

Status from the error, body ``{"error", "code", "retryable"}`` as JSON, ``Retry-After`` when a retry may
succeed, and any extra headers the error asks for (``WWW-Authenticate`` on 401). Starlette routes use
:func:`error_response`; raw ASGI handlers send the same thing with :func:`send_error`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from starlette.responses import Response

from core.errors import WakeserveError

RETRY_AFTER_S = 1

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def error_headers(err: WakeserveError) -> list[tuple[bytes, bytes]]:
    """The headers of an error answer besides its length."""
    headers = [(b"content-type", b"application/json")]
    if err.retryable:
        headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
    headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items())
    return headers


def error_body(err: WakeserveError) -> bytes:
    return orjson.dumps(err.to_json())


def error_response(err: WakeserveError) -> Response:
    """A Starlette response for ``err``."""
    response = Response(error_body(err), status_code=err.status)
    response.raw_headers = [*error_headers(err), *(h for h in response.raw_headers if h[0] != b"content-type")]
    return response


async def send_error(send: Send, err: WakeserveError) -> None:
    """Answer a raw ASGI request with ``err``."""
    body = error_body(err)
    headers = [*error_headers(err), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
