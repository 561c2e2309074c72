"""OpenAI-compatible request bodies (chat completions and completions) and their mapping to the internal
:class:`functions.generation.schema.GenerationRequest`.

Fields we do not implement and that would change the answer (``logprobs``, penalties, ``echo``, ``suffix``,
``tools``) are refused with a 400 rather than silently ignored; unknown fields are ignored, as vLLM does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import InvalidInputError
from functions.generation.schema import GenerationParameters, GenerationRequest, Message, Priority


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=-1)
    max_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1, le=8)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    priority: str | None = None
    ignore_eos: bool = False
    logprobs: bool | int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("give at most 4 non-empty stop strings")
        return value

    def _unsupported(self) -> list[str]:
        named = []
        if self.logprobs:
            named.append("logprobs")
        for penalty in ("presence_penalty", "frequency_penalty"):
            if getattr(self, penalty):
                named.append(penalty)
        return named

    def parameters(self, max_tokens: int | None) -> GenerationParameters:
        values: dict[str, Any] = {"n": self.n, "temperature": 1.0 if self.temperature is None else self.temperature}
        if self.top_p is not None:
            values["top_p"] = self.top_p
        if self.top_k is not None and self.top_k > 0:
            values["top_k"] = self.top_k
        if max_tokens is not None:
            values["max_tokens"] = max_tokens
        if self.stop:
            values["stop"] = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        if self.seed is not None:
            values["seed"] = self.seed
        if self.ignore_eos:
            values["provider_extensions"] = {"ignore_eos": True}
        return GenerationParameters(**values)

    def request_priority(self, header: str | None) -> Priority:
        value = self.priority or header
        return Priority.INTERACTIVE if value is None else Priority.parse(value)

    @property
    def include_usage(self) -> bool:
        return self.stream and self.stream_options is not None and self.stream_options.include_usage


class ChatRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[Any] | None = None

    def to_internal(self, request_id: str, priority_header: str | None) -> GenerationRequest:
        refused = self._unsupported() + (["tools"] if self.tools else [])
        if refused:
            raise InvalidInputError(f"not supported here: {', '.join(refused)}")
        messages = [
            Message(role="system" if m.role == "developer" else m.role, content=m.text()) for m in self.messages
        ]
        return GenerationRequest(
            id=request_id,
            model=self.model,
            messages=messages,
            generation_parameters=self.parameters(self.max_completion_tokens or self.max_tokens),
            priority=self.request_priority(priority_header),
        )


class CompletionRequest(_Common):
    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None

    def to_internal(self, request_id: str, priority_header: str | None) -> GenerationRequest:
        refused = self._unsupported() + (["echo"] if self.echo else []) + (["suffix"] if self.suffix else [])
        if refused:
            raise InvalidInputError(f"not supported here: {', '.join(refused)}")
        prompts = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        if len(prompts) != 1:
            raise InvalidInputError("give one prompt per request (a list of exactly one string is accepted)")
        return GenerationRequest(
            id=request_id,
            model=self.model,
            prompt=prompts[0],
            generation_parameters=self.parameters(self.max_tokens),
            priority=self.request_priority(priority_header),
        )


def parse(model: type[ChatRequest] | type[CompletionRequest], body: object) -> ChatRequest | CompletionRequest:
    """Validate an OpenAI body; the first problem becomes a 400 naming the field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInputError(f"{where}: {first['msg']}") from None
