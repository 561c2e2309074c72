"""The internal chunk stream rendered as OpenAI chat/completions answers: whole, or as SSE chunks.

The stream format is the one OpenAI and vLLM send: each chat choice opens with a chunk carrying the role,
every choice ends with exactly one chunk carrying its ``finish_reason``, ``stream_options.include_usage``
adds a last chunk with empty ``choices`` and the usage, ``data: [DONE]`` ends the stream, and an error after
the stream started is one ``data: {"error": ...}`` event followed by ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from core.errors import WakeserveError
from functions.generation.schema import (
    Chunk,
    Delta,
    GenerationEnd,
    GenerationError,
    GenerationStart,
    SequenceEnd,
    SequenceStart,
    Usage,
)
from functions.serving.sse import DONE, event

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error"}


def error_document(status: int, message: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    """An OpenAI error object: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = ERROR_TYPES.get(status, "not_found_error" if status == 404 else "server_error")
    if status in (429, 503):
        kind = "service_unavailable"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_of(exc: WakeserveError) -> dict[str, Any]:
    return error_document(exc.status, exc.message, exc.code)


def usage_document(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


@dataclass
class _Whole:
    texts: dict[int, list[str]] = field(default_factory=dict)
    reasons: dict[int, str] = field(default_factory=dict)
    usage: Usage | None = None
    start: GenerationStart | None = None
    error: GenerationError | None = None


async def collect(chunks: AsyncIterator[Chunk]) -> _Whole:
    whole = _Whole()
    async for chunk in chunks:
        if isinstance(chunk, GenerationStart):
            whole.start = chunk
        elif isinstance(chunk, SequenceStart):
            whole.texts[chunk.index] = []
        elif isinstance(chunk, Delta):
            whole.texts.setdefault(chunk.index, []).append(chunk.text)
        elif isinstance(chunk, SequenceEnd):
            whole.reasons[chunk.index] = chunk.finish_reason.value
        elif isinstance(chunk, GenerationEnd):
            whole.usage = chunk.usage
        elif isinstance(chunk, GenerationError):
            whole.error = chunk
    return whole


def whole_answer(whole: _Whole, chat: bool, fallback_id: str, model: str) -> dict[str, Any]:
    """The non-streaming answer (the caller raises first when ``whole.error`` is set)."""
    assert whole.usage is not None and whole.start is not None
    choices: list[dict[str, Any]] = []
    for index in sorted(whole.texts):
        text = "".join(whole.texts[index])
        body: dict[str, Any] = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
        choices.append({"index": index, **body, "logprobs": None, "finish_reason": whole.reasons.get(index)})
    return {
        "id": ("chatcmpl-" if chat else "cmpl-") + (whole.start.id or fallback_id),
        "object": "chat.completion" if chat else "text_completion",
        "created": whole.start.created,
        "model": model,
        "choices": choices,
        "usage": usage_document(whole.usage),
    }


async def sse_events(chunks: AsyncIterator[Chunk], chat: bool, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    """The OpenAI event stream of ``chunks``; always ends with ``[DONE]``."""
    head: dict[str, Any] = {}
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk_event(choice: dict[str, Any]) -> bytes:
        return event({**head, "choices": [{"index": choice.pop("index"), **choice}], **extra})

    async for chunk in chunks:
        if isinstance(chunk, GenerationStart):
            head = {
                "id": ("chatcmpl-" if chat else "cmpl-") + chunk.id,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": chunk.created,
                "model": model,
            }
        elif isinstance(chunk, SequenceStart):
            if chat:
                delta = {"role": "assistant", "content": ""}
                yield chunk_event({"index": chunk.index, "delta": delta, "logprobs": None, "finish_reason": None})
        elif isinstance(chunk, Delta):
            body: dict[str, Any] = {"delta": {"content": chunk.text}} if chat else {"text": chunk.text}
            yield chunk_event({"index": chunk.index, **body, "logprobs": None, "finish_reason": None})
        elif isinstance(chunk, SequenceEnd):
            body = {"delta": {}} if chat else {"text": ""}
            reason = chunk.finish_reason.value
            yield chunk_event({"index": chunk.index, **body, "logprobs": None, "finish_reason": reason})
        elif isinstance(chunk, GenerationEnd):
            if include_usage:
                yield event({**head, "choices": [], "usage": usage_document(chunk.usage)})
        elif isinstance(chunk, GenerationError):
            status = 503 if chunk.retryable else 500
            yield event(error_document(status, chunk.message, chunk.code))
    yield DONE
