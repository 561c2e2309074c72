"""One forwarded call, relayed from a replica to the client as its bytes arrive.

A :class:`Relay` is the gateway's answer to every forwarded route. It opens the replica's answer through an
:data:`Opener` (which picks or waits for a replica and retries transport failures until the first byte),
then copies the body chunk by chunk, never buffering it. The client's ``http.disconnect`` cancels the
relay at once and closes the replica's connection, which is how a replica learns to stop generating.

A stream asked of a function with no ready replica is answered at once instead: 200 ``text/event-stream``,
an SSE comment saying it waits, keep-alive comments while the activator wakes a replica, then the replica's
events. Whatever goes wrong after that head is written ends the stream with an error event, so a client
never waits on a silent connection or reads half an answer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from core.errors import TransientError, WakeserveError
from wakeserve.activator import Activator
from wakeserve.gateway_dialect import Dialect

log = logging.getLogger(__name__)

WAITING = b": waiting for a replica\n\n"
KEEPALIVE = b": keep-alive\n\n"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # proxies in front of the gateway must not hold events back either
]
# Per-connection headers are the gateway's own; the body's length passes through since the bytes are relayed raw.
_DROP_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "date", "server"}
MAX_ERROR_BODY = 64 * 1024


class UpstreamBrokenError(Exception):
    """The replica's answer broke after part of it reached the client; the connection is aborted."""


@dataclass
class Upstream:
    """A replica's answer, opened: its head, its first body chunk, the rest, and what closing it releases."""

    response: httpx.Response
    first: bytes
    rest: AsyncGenerator[bytes, None]
    stack: AsyncExitStack

    @property
    def is_sse(self) -> bool:
        content_type: str = self.response.headers.get("content-type", "")
        return content_type.startswith("text/event-stream")

    async def close(self) -> None:
        """Close the replica's connection and release the replica; runs to the end even when cancelled."""
        await self.release(self.stack)

    @staticmethod
    async def release(stack: AsyncExitStack) -> None:
        with anyio.CancelScope(shield=True):
            await stack.aclose()

    async def read_bounded(self) -> bytes:
        body = bytearray(self.first)
        async for chunk in self.rest:
            body += chunk
            if len(body) >= MAX_ERROR_BODY:
                break
        return bytes(body[:MAX_ERROR_BODY])


async def _raw(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    """The body as it arrives, undecoded so its headers stay true; a response already read (one a transport
    built in memory) is its content."""
    if response.is_stream_consumed:
        yield response.content
        return
    async for chunk in response.aiter_raw():
        yield chunk


Opener = Callable[[], Awaitable[Upstream]]
"""Opens the replica's answer or raises :class:`WakeserveError` (no replica in time, every attempt failed)."""


async def open_upstream(
    activator: Activator,
    client: httpx.AsyncClient,
    function: str,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    attempts: int,
) -> Upstream:
    """A replica's answer, opened up to its first body chunk; the replica counts as in flight until closed.

    Inference is a pure function of its input, so a call whose replica failed before a byte of its answer
    arrived is resent to another (``attempts`` in all); once a byte could have reached the client, never.
    """
    for attempt in range(1, attempts + 1):
        stack = AsyncExitStack()
        try:
            replica = await stack.enter_async_context(activator.replica(function))
            request = client.build_request(method, replica.url + path, content=body, headers=headers)
            try:
                response = await client.send(request, stream=True)
                stack.push_async_callback(response.aclose)
                chunks = _raw(response)
                stack.push_async_callback(chunks.aclose)
                first = await anext(chunks, b"")
            except httpx.TransportError as exc:
                log.warning("%s-%d: %s (attempt %d)", function, replica.index, exc, attempt)
                activator.pools[function].report_failure(replica)
                await Upstream.release(stack)
                if attempt == attempts:
                    raise TransientError(f"replicas of {function!r} failed: {type(exc).__name__}") from exc
                continue
        except BaseException:
            await Upstream.release(stack)
            raise
        return Upstream(response, first, chunks, stack)
    raise AssertionError("unreachable")


def _body(chunk: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.response.body", "body": chunk, "more_body": more}


class Relay(Response):
    """The ASGI answer of a forwarded call; ``keepalive_s`` set means: start an SSE stream now, then wait."""

    def __init__(self, opener: Opener, dialect: Dialect, *, keepalive_s: float | None = None) -> None:
        self.opener = opener
        self.dialect = dialect
        self.keepalive_s = keepalive_s
        self._scope = anyio.CancelScope()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        failure: Exception | None = None
        with self._scope:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._cancel_on_disconnect, receive)
                try:
                    await self._answer(send)
                except OSError:
                    pass  # the server refuses to send to a client that has gone: nothing is left to answer
                except Exception as exc:  # noqa: BLE001 - re-raised below, outside the group that would wrap it
                    failure = exc
                tasks.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _cancel_on_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._scope.cancel()

    async def _answer(self, send: Send) -> None:
        if self.keepalive_s is not None:
            await self._answer_while_waking(send, self.keepalive_s)
            return
        try:
            upstream = await self.opener()
        except WakeserveError as err:
            await self.dialect.send_error(send, err)
            return
        try:
            headers = [
                (k.encode("latin-1"), v.encode("latin-1"))
                for k, v in upstream.response.headers.multi_items()
                if k not in _DROP_RESPONSE
            ]
            await send({"type": "http.response.start", "status": upstream.response.status_code, "headers": headers})
            await self._pipe(upstream, send)
        finally:
            await upstream.close()

    async def _answer_while_waking(self, send: Send, keepalive_s: float) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send(_body(WAITING))
        opened: Upstream | WakeserveError
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._keep_alive, send, keepalive_s)
            try:
                opened = await self.opener()
            except WakeserveError as err:
                opened = err
            tasks.cancel_scope.cancel()
        if isinstance(opened, WakeserveError):
            await send(_body(self.dialect.error_events(opened), more=False))
            return
        try:
            if opened.response.status_code != 200:
                events = self.dialect.upstream_error_events(opened.response.status_code, await opened.read_bounded())
                await send(_body(events, more=False))
                return
            await self._pipe(opened, send)
        finally:
            await opened.close()

    async def _keep_alive(self, send: Send, every_s: float) -> None:
        try:
            while True:
                await anyio.sleep(every_s)
                await send(_body(KEEPALIVE))
        except OSError:
            self._scope.cancel()

    async def _pipe(self, upstream: Upstream, send: Send) -> None:
        """The replica's body, chunk by chunk, then the end of the answer."""
        tail = b"\n\n"  # nothing relayed yet: any event written now stands on its own
        try:
            if upstream.first:
                await send(_body(upstream.first))
                tail = (tail + upstream.first)[-2:]
            async for chunk in upstream.rest:
                await send(_body(chunk))
                tail = (tail + chunk)[-2:]
        except httpx.TransportError as exc:
            url = upstream.response.request.url
            log.warning("the answer of %s broke after it started: %s", url, type(exc).__name__)
            if not (upstream.is_sse and tail == b"\n\n"):
                raise UpstreamBrokenError(f"the answer of {url} broke after it started") from exc
            err = WakeserveError(f"the replica's stream broke: {type(exc).__name__}")
            err.status, err.code, err.retryable = 502, "upstream_broken", True
            await send(_body(self.dialect.error_events(err), more=False))
            return
        await send(_body(b"", more=False))
