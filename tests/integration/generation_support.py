"""Reading OpenAI-style event streams byte by byte, and the generator's counters, for generation tests."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

SOLO_PROMPTS = [
    "What is the capital of France? Answer in one sentence.",
    "Write a haiku about the sea.",
    "Explain gravity to a child.",
    "List three fruits.",
    "What is 2+2?",
    "Name a famous painter.",
    "Why is the sky blue?",
    "Give me a tip for sleeping well.",
    "What is Python?",
    "Describe a cat.",
    "How do plants grow?",
    "What is the moon made of?",
    "Tell me a joke.",
    "What is rain?",
    "Who wrote Hamlet?",
    "What is a computer?",
]


@dataclass
class RawStream:
    """Every event of one SSE answer, as received."""

    status: int
    headers: dict[str, str]
    raw: bytes
    events: list[str] = field(default_factory=list)

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.events if e != "[DONE]"]


def split_events(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an event stream; asserts the framing is exactly ``data: X\\n\\n``."""
    text = raw.decode()
    assert text.endswith("\n\n"), text[-200:]
    blocks = text[:-2].split("\n\n")
    events = []
    for block in blocks:
        if block.startswith(":"):
            continue  # a comment (keep-alive)
        assert block.startswith("data: "), block
        assert "\n" not in block, block
        events.append(block[len("data: ") :])
    return events


def post_stream(client: httpx.Client, path: str, body: dict[str, Any], **kwargs: Any) -> RawStream:
    with client.stream("POST", path, json=body, **kwargs) as response:
        raw = response.read()
    stream = RawStream(response.status_code, dict(response.headers), raw)
    if response.status_code == 200:
        stream.events = split_events(raw)
    return stream


def counter(metrics_text: str, name: str, model: str = "generator") -> float:
    """The value of a labelled Prometheus sample (0 when absent)."""
    match = re.search(rf'^{re.escape(name)}\{{model="{model}"\}} (\S+)$', metrics_text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
