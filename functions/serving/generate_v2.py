"""The v2 generate extension (as Triton serves it): ``POST /v2/models/{name}/generate`` and ``/generate_stream``.

The body holds ``text_input`` (a raw prompt, no chat template) and optional ``parameters`` (``max_tokens``,
``temperature``, ``top_p``, ``top_k``, ``stop``, ``seed``, ``ignore_eos``); the answer holds ``text_output``,
``model_name``, ``model_version`` and ``finish_reason``. The stream is SSE ``data:`` events with the text
so far in pieces and no ``[DONE]``: the end is the connection closing; an error is ``{"error": "..."}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import InvalidInputError
from functions.generation.schema import (
    Chunk,
    Delta,
    GenerationError,
    GenerationParameters,
    GenerationRequest,
    SequenceEnd,
)
from functions.serving.sse import event


class _Parameters(BaseModel):
    model_config = ConfigDict(extra="ignore")

    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    stop: list[str] = Field(default_factory=list, max_length=4)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    ignore_eos: bool = False


class GenerateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text_input: str = Field(min_length=1)
    parameters: _Parameters = Field(default_factory=_Parameters)


def to_internal(body: object, model: str, request_id: str) -> GenerationRequest:
    """A generate body as an internal request (greedy unless ``temperature`` is given)."""
    try:
        parsed = GenerateBody.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInputError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    p = parsed.parameters
    values: dict[str, Any] = {"temperature": p.temperature, "top_p": p.top_p, "top_k": p.top_k, "stop": p.stop}
    if p.max_tokens is not None:
        values["max_tokens"] = p.max_tokens
    if p.seed is not None:
        values["seed"] = p.seed
    if p.ignore_eos:
        values["provider_extensions"] = {"ignore_eos": True}
    return GenerationRequest(
        id=request_id, model=model, prompt=parsed.text_input, generation_parameters=GenerationParameters(**values)
    )


def _document(model: str, version: str, text: str, reason: str | None) -> dict[str, Any]:
    return {"model_name": model, "model_version": version, "text_output": text, "finish_reason": reason}


async def whole(chunks: AsyncIterator[Chunk], model: str, version: str) -> dict[str, Any] | GenerationError:
    texts: list[str] = []
    reason = None
    async for chunk in chunks:
        if isinstance(chunk, Delta):
            texts.append(chunk.text)
        elif isinstance(chunk, SequenceEnd):
            reason = chunk.finish_reason.value
        elif isinstance(chunk, GenerationError):
            return chunk
    return _document(model, version, "".join(texts), reason)


async def stream_events(chunks: AsyncIterator[Chunk], model: str, version: str) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if isinstance(chunk, Delta):
            yield event(_document(model, version, chunk.text, None))
        elif isinstance(chunk, SequenceEnd):
            yield event(_document(model, version, "", chunk.finish_reason.value))
        elif isinstance(chunk, GenerationError):
            yield event({"error": chunk.message, "code": chunk.code, "retryable": chunk.retryable})
