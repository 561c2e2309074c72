"""The one internal schema of generation: a request in, a stream of typed chunks out.

Every edge (OpenAI routes, the v2 generate extension, v2 ``infer``, events) maps its wire format to a
:class:`GenerationRequest` and renders the :data:`Chunk` stream back; the engine knows nothing of the edges.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Priority(enum.IntEnum):
    """Lower runs first: interactive requests join the batch before batch requests."""

    INTERACTIVE = 0
    BATCH = 1

    @classmethod
    def parse(cls, value: object) -> Priority:
        """``interactive``/``high`` or ``batch``/``low`` (as the event contract spells priorities)."""
        names = {"interactive": cls.INTERACTIVE, "high": cls.INTERACTIVE, "batch": cls.BATCH, "low": cls.BATCH}
        if isinstance(value, str) and value.lower() in names:
            return names[value.lower()]
        raise ValueError(f"priority must be one of {sorted(names)}, not {value!r}")


class FinishReason(enum.StrEnum):
    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str


class GenerationParameters(BaseModel):
    """Sampling and length controls; ``provider_extensions`` carries engine-specific options untouched."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="0: no top-k cut.")
    max_tokens: int = Field(256, ge=1)
    stop: list[str] = Field(default_factory=list, max_length=4)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    n: int = Field(1, ge=1, le=8)
    provider_extensions: dict[str, Any] = Field(default_factory=dict)


class GenerationRequest(BaseModel):
    """One generation: chat ``messages`` or a raw ``prompt`` (exactly one of them)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    model: str
    messages: list[Message] | None = None
    prompt: str | None = None
    generation_parameters: GenerationParameters = Field(default_factory=GenerationParameters)
    priority: Priority = Priority.INTERACTIVE


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    time_to_first_token_s: float | None = None


class GenerationStart(BaseModel):
    kind: Literal["generation_start"] = "generation_start"
    id: str
    created: int
    model: str
    role: Literal["assistant"] = "assistant"


class SequenceStart(BaseModel):
    kind: Literal["sequence_start"] = "sequence_start"
    index: int


class Delta(BaseModel):
    kind: Literal["delta"] = "delta"
    index: int
    text: str


class SequenceEnd(BaseModel):
    kind: Literal["sequence_end"] = "sequence_end"
    index: int
    finish_reason: FinishReason
    completion_tokens: int


class GenerationEnd(BaseModel):
    kind: Literal["generation_end"] = "generation_end"
    usage: Usage


class GenerationError(BaseModel):
    kind: Literal["error"] = "error"
    code: str
    message: str
    retryable: bool = False
    index: int | None = None


Chunk = Annotated[
    GenerationStart | SequenceStart | Delta | SequenceEnd | GenerationEnd | GenerationError,
    Field(discriminator="kind"),
]
