"""Building engines over the scripted tiny model, making requests and reading their chunks back."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Protocol

from functions.generation.engine import ContinuousBatchingEngine
from functions.generation.limits import EngineLimits
from functions.generation.observer import EngineObserver
from functions.generation.schema import (
    Chunk,
    Delta,
    GenerationEnd,
    GenerationParameters,
    GenerationRequest,
    Priority,
    SequenceEnd,
)
from functions.generation.streams import GenerationStream
from tests.functions.generation.tiny_lm import ScriptedLM, ids_of, words

WAIT_S = 20.0


class MakeEngine(Protocol):
    def __call__(
        self, limits: EngineLimits | None = None, observer: EngineObserver | None = None
    ) -> tuple[ContinuousBatchingEngine, ScriptedLM]: ...


def request(
    prompt: list[int], rid: str = "r", priority: Priority = Priority.INTERACTIVE, **params: object
) -> GenerationRequest:
    return GenerationRequest(
        id=rid,
        model="tiny",
        prompt=words(prompt),
        generation_parameters=GenerationParameters.model_validate(params),
        priority=priority,
    )


def tokens_by_index(chunks: list[Chunk]) -> dict[int, list[int]]:
    """Each sequence's generated token ids, read back from its text deltas."""
    texts: dict[int, str] = {}
    for chunk in chunks:
        if isinstance(chunk, Delta):
            texts[chunk.index] = texts.get(chunk.index, "") + chunk.text
    return {index: ids_of(text) for index, text in texts.items()}


def ends(chunks: list[Chunk]) -> dict[int, SequenceEnd]:
    return {chunk.index: chunk for chunk in chunks if isinstance(chunk, SequenceEnd)}


def usage_of(chunks: list[Chunk]) -> GenerationEnd:
    assert isinstance(chunks[-1], GenerationEnd), chunks[-1]
    return chunks[-1]


def wait_until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition never held")
        time.sleep(0.002)


async def collect(stream: GenerationStream, timeout_s: float = WAIT_S) -> list[Chunk]:
    async def read() -> list[Chunk]:
        return [chunk async for chunk in stream]

    return await asyncio.wait_for(read(), timeout_s)


class Call:
    """``engine.generate`` on its own thread, so a test can act while it is in flight."""

    def __init__(self, engine: ContinuousBatchingEngine, generation: GenerationRequest) -> None:
        self.chunks: list[Chunk] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(engine, generation), daemon=True)
        self._thread.start()

    def _run(self, engine: ContinuousBatchingEngine, generation: GenerationRequest) -> None:
        try:
            self.chunks = engine.generate(generation, timeout_s=WAIT_S)
        except BaseException as exc:  # handed to the test through result()
            self.error = exc

    def result(self) -> list[Chunk]:
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive(), "generate never returned"
        if self.error is not None:
            raise self.error
        return self.chunks


class Recorder(EngineObserver):
    """Every report of the engine, in order."""

    def __init__(self) -> None:
        self.late: list[int] = []
        self.saved: list[int] = []
        self.prompts: list[int] = []
        self.tokens = 0

    def prompt(self, tokens: int) -> None:
        self.prompts.append(tokens)

    def generated(self, tokens: int) -> None:
        self.tokens += tokens

    def cancelled(self, saved_tokens: int) -> None:
        self.saved.append(saved_tokens)

    def late_tokens(self, tokens: int) -> None:
        self.late.append(tokens)
