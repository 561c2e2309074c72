"""The bounds of a generation engine and the numbers it reports (no torch here: cheap to import)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineLimits:
    """Bounds of one engine: sequences decoded together, requests waiting, prompts prefilled per step."""

    max_running: int = 16
    max_waiting: int = 64
    max_prefills_per_step: int = 16
    # Prompts prefilled together are padded to the longest; rows x longest prompt is held under this (one
    # request always joins, however long), which bounds the attention's memory during a prefill.
    max_prefill_tokens: int = 4096
    default_max_tokens: int = 256


@dataclass(frozen=True)
class EngineStats:
    running_sequences: int
    waiting_requests: int
    waiting_sequences: int
    queued_tokens: int
