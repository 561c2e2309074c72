"""Bounds every HTTP listener puts on its clients: how many connections, how long for headers and body, how big.

uvicorn (0.5x) bounds neither the time a client takes to send its request headers nor the time its body takes;
a client sending one byte a second holds a connection, a parser and, once its headers are in, a task, for as
long as it likes. Its ``limit_concurrency`` only answers 503 once a request's headers are complete, so slow
clients are never counted against it. The bounds therefore live in the protocol, where the bytes arrive:

- a header deadline, from the connection (or the first byte of a later keep-alive request) to the end of the
  headers; past it the answer is 408 and the connection is closed;
- a body deadline, from the end of the headers to the end of the body (whole body, not per chunk: a client
  trickling one byte just inside any per-chunk timeout is as slow as one that stops); past it, 408 and close;
- a cap on open connections: a connection past it is answered 503 (retryable) and closed at once;
- a cap on header bytes received before the headers are complete: past it, 431 and close. llhttp itself does
  not limit header size; headers that arrive whole in one read are bounded by the event loop's read size
  instead (256 KiB), so the cap matters for clients that dribble headers in, which is where memory grows.

Body size is :mod:`core.body_limit`'s concern, at the ASGI layer, where it answers through the one error path;
each listener's application wraps itself in it. :func:`server_config` builds every listener's ``uvicorn.Config``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.body_limit import ASGIApp
from core.errors import OverloadedError, WakeserveError
from core.http_errors import error_body, error_headers

log = logging.getLogger(__name__)


class RequestTimeoutError(WakeserveError):
    """The client did not send its request headers or body in time."""

    status = 408
    code = "request_timeout"


class HeadersTooLargeError(WakeserveError):
    """The request line and headers are over the listener's limit."""

    status = 431
    code = "headers_too_large"


@dataclass(frozen=True)
class ListenerLimits:
    """The bounds of one listener (see the module docstring)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_connections: int = 2048
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 64 * 1024 * 1024


_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


def raw_answer(err: WakeserveError) -> bytes:
    """``err`` as a whole HTTP/1.1 response that closes the connection, for answers outside any request cycle."""
    body = error_body(err)
    lines = [b"HTTP/1.1 %d %s" % (err.status, _REASONS.get(err.status, b"Error"))]
    lines += [k + b": " + v for k, v in error_headers(err)]
    lines += [b"content-length: %d" % len(body), b"connection: close", b"", b""]
    return b"\r\n".join(lines) + body


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and caps of :class:`ListenerLimits`.

    A deadline is armed only when a read leaves a request incomplete (and on a new connection), so a request
    that arrives whole in one read, the usual case, costs no timer at all.
    """

    limits: ListenerLimits = ListenerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_for = ""
        self._phase = "headers"  # of the request being read: "headers", "body", or "" between requests
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("connection limit (%d) reached; refusing %s", self.limits.max_connections, self.client)
            self._close_with(OverloadedError(f"over {self.limits.max_connections} open connections; retry later"))
            return
        self._arm("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing() or not self._phase:
            return
        if self._phase == "headers":
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._close_with(HeadersTooLargeError(f"request headers are over {self.limits.max_header_bytes} bytes"))
                return
        if self._deadline_for != self._phase:
            self._arm(self._phase)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase, self._header_bytes = "headers", 0

    def on_headers_complete(self) -> None:
        self._phase = "body"
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = ""
        self._disarm()
        super().on_message_complete()

    def _arm(self, phase: str) -> None:
        self._disarm()
        seconds = self.limits.header_timeout_s if phase == "headers" else self.limits.body_timeout_s
        self._deadline, self._deadline_for = self.loop.call_later(seconds, self._expired, phase, seconds), phase

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline, self._deadline_for = None, ""

    def _expired(self, what: str, seconds: float) -> None:
        self._deadline, self._deadline_for = None, ""
        if self.transport.is_closing():
            return
        log.info("closing %s: request %s not received within %.1fs", self.client, what, seconds)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The application may be waiting for the rest of the body: it sees a disconnect, and whatever it
            # answers is not written, since the connection now belongs to the timeout answer.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        self._close_with(RequestTimeoutError(f"request {what} not received within {seconds:g} s"))

    def _close_with(self, err: WakeserveError) -> None:
        self._disarm()
        self.transport.write(raw_answer(err))
        self.transport.close()


def guarded_protocol(limits: ListenerLimits) -> type[GuardedHttpProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to ``limits``."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"limits": limits})


def server_config(app: ASGIApp, limits: ListenerLimits, *, host: str, port: int, **kwargs: Any) -> uvicorn.Config:
    """A ``uvicorn.Config`` serving ``app`` (already behind :class:`core.body_limit.BodyLimit`) with the guarded
    protocol."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits),
        ws="none",  # no listener serves websockets; "auto" would import a websocket stack at start
        **kwargs,
    )
