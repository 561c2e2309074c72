"""A listener that only answers callers carrying its bearer token (``Authorization: Bearer <token>``)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from core.body_limit import ASGIApp, Receive, Scope, Send
from core.errors import UnauthorizedError
from core.http_errors import send_error

log = logging.getLogger(__name__)


def bearer_matches(authorization: str | bytes | None, token: str) -> bool:
    """True when ``authorization`` is ``Bearer <token>`` (compared in constant time)."""
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def authorization(scope: Scope) -> bytes:
    for key, value in scope["headers"]:
        if key == b"authorization":
            return bytes(value)
    return b""


class RequireBearer:
    """ASGI middleware: an HTTP request without the token gets 401 through the one error path.

    ``is_open(path)`` names the paths anyone may call (health probes, metrics scrapes); ``what`` names the API
    in the refusal and in the log line.
    """

    def __init__(self, app: ASGIApp, token: str, what: str, is_open: Callable[[str], bool] = lambda _: False) -> None:
        self.app, self.token, self.what, self.is_open = app, token, what, is_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and not self.is_open(scope["path"])
            and not bearer_matches(authorization(scope), self.token)
        ):
            client = scope.get("client") or ("unknown", 0)
            log.warning("%s request refused (no valid token) from %s:%s: %s", self.what, *client, scope["path"])
            await send_error(send, UnauthorizedError(f"the {self.what} needs a valid bearer token"))
            return
        await self.app(scope, receive, send)
