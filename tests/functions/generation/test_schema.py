"""The generation schema: priorities, parameter bounds, and chunks that survive a JSON round trip."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from functions.generation.schema import (
    Chunk,
    Delta,
    FinishReason,
    GenerationEnd,
    GenerationError,
    GenerationParameters,
    GenerationRequest,
    GenerationStart,
    Priority,
    SequenceEnd,
    SequenceStart,
    Usage,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("interactive", Priority.INTERACTIVE),
        ("high", Priority.INTERACTIVE),
        ("HIGH", Priority.INTERACTIVE),
        ("Interactive", Priority.INTERACTIVE),
        ("batch", Priority.BATCH),
        ("low", Priority.BATCH),
        ("Low", Priority.BATCH),
    ],
)
def test_priority_parses_names_in_any_case(value: str, expected: Priority) -> None:
    assert Priority.parse(value) is expected


@pytest.mark.parametrize("value", ["urgent", "", " high", "normal", None, 0, 1, ["batch"]])
def test_priority_refuses_anything_else(value: object) -> None:
    with pytest.raises(ValueError, match="priority must be one of"):
        Priority.parse(value)


def test_interactive_runs_before_batch() -> None:
    assert Priority.INTERACTIVE < Priority.BATCH


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"temperature": 0.0},
        {"temperature": 2.0},
        {"top_p": 1e-9},
        {"top_p": 1.0},
        {"top_k": 0},
        {"top_k": 50},
        {"max_tokens": 1},
        {"n": 1},
        {"n": 8},
        {"stop": ["a", "b", "c", "d"]},
        {"seed": 0},
        {"seed": 2**63 - 1},
        {"provider_extensions": {"ignore_eos": True}},
    ],
)
def test_parameters_within_bounds_are_accepted(fields: dict[str, Any]) -> None:
    params = GenerationParameters(**fields)
    for name, value in fields.items():
        assert getattr(params, name) == value


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.01}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.01}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"n": 0}, "n"),
        ({"n": 9}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"best_of": 2}, "best_of"),
    ],
)
def test_parameters_out_of_bounds_are_refused(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        GenerationParameters(**fields)
    assert [error["loc"] for error in raised.value.errors()] == [(field,)]


def test_defaults() -> None:
    params = GenerationParameters()
    assert (params.temperature, params.top_p, params.top_k, params.max_tokens, params.n) == (1.0, 1.0, 0, 256, 1)
    assert params.stop == [] and params.seed is None
    request = GenerationRequest(id="r", model="m", prompt="hi")
    assert request.priority is Priority.INTERACTIVE
    assert request.generation_parameters == params


def test_request_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        GenerationRequest.model_validate({"id": "r", "model": "m", "prompt": "hi", "stream": True})


CHUNKS: list[Any] = [
    GenerationStart(id="r1", created=1700000000, model="tiny"),
    SequenceStart(index=1),
    Delta(index=0, text="héllo\n"),
    SequenceEnd(index=2, finish_reason=FinishReason.LENGTH, completion_tokens=7),
    SequenceEnd(index=0, finish_reason=FinishReason.CANCELLED, completion_tokens=0),
    GenerationEnd(usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7, time_to_first_token_s=0.25)),
    GenerationEnd(usage=Usage(prompt_tokens=3, completion_tokens=0, total_tokens=3)),
    GenerationError(code="model_error", message="generation failed: RuntimeError", retryable=True),
    GenerationError(code="model_error", message="one sequence", index=3),
]

CHUNK = TypeAdapter(Chunk)


@pytest.mark.parametrize("chunk", CHUNKS, ids=lambda c: c.kind)
def test_chunks_round_trip_through_json(chunk: Any) -> None:
    encoded = CHUNK.dump_json(chunk)
    decoded = CHUNK.validate_json(encoded)
    assert type(decoded) is type(chunk)
    assert decoded == chunk
    assert CHUNK.validate_python(CHUNK.dump_python(chunk, mode="json")) == chunk


@pytest.mark.parametrize(
    "document",
    [
        {"kind": "sparkle", "index": 0},
        {"index": 0, "text": "no kind"},
        {"kind": "delta", "index": 0},
        {"kind": "sequence_end", "index": 0, "finish_reason": "timeout", "completion_tokens": 1},
    ],
)
def test_chunks_without_a_known_kind_or_fields_are_refused(document: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CHUNK.validate_python(document)
