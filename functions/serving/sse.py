"""Server-Sent Events over raw ASGI, watching for the client leaving while the stream is written.

A client that disconnects is noticed the moment its ``http.disconnect`` arrives, not at the next write, and
``on_disconnect`` runs at once (the generation edges cancel the request in the engine there).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any

import orjson

Message = MutableMapping[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
DONE = b"data: [DONE]\n\n"


def event(document: object) -> bytes:
    """One ``data:`` event holding ``document`` as compact JSON."""
    return b"data: " + orjson.dumps(document) + b"\n\n"


async def _watch_disconnect(receive: Receive, on_disconnect: Callable[[], None], gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            on_disconnect()
            return


async def send_stream(
    send: Send, receive: Receive, events: AsyncIterator[bytes], on_disconnect: Callable[[], None]
) -> bool:
    """Write ``events`` as a 200 event stream; returns False when the client left before the end."""
    gone = asyncio.Event()
    watcher = asyncio.create_task(_watch_disconnect(receive, on_disconnect, gone))
    try:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        async for chunk in events:
            if gone.is_set():
                return False
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return not gone.is_set()
    except OSError:  # the transport closed under us: the same as a disconnect
        on_disconnect()
        return False
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
