"""A replica's HTTP side scripted by a test, and real uvicorn servers on loopback to serve it (and a gateway).

The stub answers every request with one script: a status, headers and a list of body chunks, optionally
holding after the first chunk until the test releases it, or streaming comments until the client leaves.
It records when the whole body went out and when its client disconnected, so a test can tell what the
gateway did with the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from core.processes import free_port

SSE = [(b"content-type", b"text/event-stream"), (b"x-replica", b"stub")]


class StubReplica:
    """An ASGI app standing in for a replica; see the module docstring."""

    def __init__(
        self,
        chunks: list[bytes],
        *,
        status: int = 200,
        headers: list[tuple[bytes, bytes]] | None = None,
        hold_after_first: bool = False,
        endless_every_s: float | None = None,
    ) -> None:
        self.chunks = chunks
        self.status = status
        self.headers = SSE if headers is None else headers
        self.hold_after_first = hold_after_first
        self.endless_every_s = endless_every_s
        self.release = asyncio.Event()
        self.finished = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.requests: list[tuple[str, bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests.append((scope["path"], body))
        watcher = asyncio.create_task(self._watch(receive))
        try:
            await self._answer(send)
        except OSError:
            pass  # the client left while the body was going out
        finally:
            if self.finished.is_set():
                watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self, receive: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected.set()

    async def _answer(self, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        for index, chunk in enumerate(self.chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if index == 0 and self.hold_after_first:
                await self.release.wait()
        while self.endless_every_s is not None:
            with contextlib.suppress(TimeoutError):  # the pace of a slow token stream
                await asyncio.wait_for(self.disconnected.wait(), self.endless_every_s)
            if self.disconnected.is_set():
                return
            await send({"type": "http.response.body", "body": b": tick\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.finished.set()


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[int]:
    """``app`` on a real uvicorn server on a free loopback port, for the duration of the block."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), "the server did not start"
                await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await task
