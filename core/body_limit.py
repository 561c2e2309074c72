"""One request-body size limit for every HTTP listener, enforced while the body streams in.

A declared ``Content-Length`` over the limit is answered 413 before any of the body is read. A body without
one (chunked) is counted as the application reads it; the first chunk past the limit answers 413 and ends the
read. Either way the answer goes through :mod:`core.http_errors`, whatever the wrapped application does.
A request whose declared length is within the limit passes through untouched: the HTTP parser already stops
its body at that length, so the hot path pays for one header scan and nothing per chunk.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from core.errors import PayloadTooLargeError
from core.http_errors import send_error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
LimitFor = Callable[[str], int]


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The ``Content-Length`` of a request, None when absent or not a number (the parser refuses those)."""
    for key, value in headers:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``limit`` bytes (``limit_for(path)`` overrides per path)."""

    def __init__(self, app: ASGIApp, limit: int, limit_for: LimitFor | None = None) -> None:
        self.app = app
        self.limit = limit
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit if self.limit_for is None else self.limit_for(scope["path"])
        declared = declared_length(scope["headers"])
        if declared is not None and declared > limit:
            await send_error(send, too_large(limit))
            return
        if declared is not None:
            await self.app(scope, receive, send)
            return
        await _Counted(self.app, limit, scope, receive, send).run()


def too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"request body is over {limit} bytes")


class _Counted:
    """One request whose body length is not declared: counted as it is read, answered 413 past the limit."""

    def __init__(self, app: ASGIApp, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        self.app, self.limit, self.scope = app, limit, scope
        self._receive, self._send = receive, send
        self.size = 0
        self.started = False
        self.refused = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                await self.refuse()
                # The application sees the refusal as an error it may translate; its answer is dropped below.
                raise too_large(self.limit)
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    async def refuse(self) -> None:
        if not self.started and not self.refused:
            await send_error(self._send, too_large(self.limit))
        self.refused = True

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except PayloadTooLargeError:
            if not self.refused:
                raise
