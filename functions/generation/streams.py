"""Where the engine thread sends a request's chunks: an asyncio stream, or a blocking one for worker threads."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Callable

from functions.generation.schema import Chunk, GenerationEnd, GenerationError


def is_last(chunk: Chunk) -> bool:
    """The chunk that ends a request's stream: its usage, or an error that is not about one sequence."""
    return isinstance(chunk, GenerationEnd) or (isinstance(chunk, GenerationError) and chunk.index is None)


class Sink:
    """Receives batches of chunks from the engine thread; ``gone`` once nobody can read them any more."""

    gone = False

    def deliver(self, chunks: list[Chunk]) -> None:
        raise NotImplementedError


class AsyncSink(Sink):
    """Chunks handed to an event loop; the queue's bound is the most a request can ever produce."""

    def __init__(self, loop: asyncio.AbstractEventLoop, bound: int) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[list[Chunk]] = asyncio.Queue(maxsize=bound)
        self.gone = False

    def deliver(self, chunks: list[Chunk]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, chunks)
        except RuntimeError:  # the loop is closed: nobody is left to read, and the engine must go on
            self.gone = True


class BlockingSink(Sink):
    """Chunks for a caller on a worker thread (v2 infer, warm-up)."""

    def __init__(self, bound: int) -> None:
        self.queue: queue.Queue[list[Chunk]] = queue.Queue(maxsize=bound)

    def deliver(self, chunks: list[Chunk]) -> None:
        self.queue.put_nowait(chunks)

    def drain(self, timeout_s: float) -> list[Chunk]:
        """Every chunk up to the last one."""
        collected: list[Chunk] = []
        while True:
            for chunk in self.queue.get(timeout=timeout_s):
                collected.append(chunk)
                if is_last(chunk):
                    return collected


class GenerationStream:
    """One request's chunks as an async iterator; ``cancel`` stops its computation at the next step."""

    def __init__(self, request_id: str, prompt_tokens: int, sink: AsyncSink, cancel: Callable[[], None]) -> None:
        self.id = request_id
        self.prompt_tokens = prompt_tokens
        self._sink = sink
        self.cancel = cancel
        self.finished = False

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        try:
            while True:
                for chunk in await self._sink.queue.get():
                    yield chunk
                    if is_last(chunk):
                        self.finished = True
                        return
        finally:
            if not self.finished:
                self.cancel()
