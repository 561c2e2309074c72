"""Prometheus series of generation, fed by the engine (an :class:`EngineObserver`) on an injected registry."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from functions.generation.limits import EngineStats
from functions.generation.observer import EngineObserver

TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
INTER_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


class GenerationMetrics(EngineObserver):
    """Time to first token, inter-token latency, tokens, cancellations, and the engine's queue as gauges."""

    def __init__(self, registry: CollectorRegistry, model: str, stats: Callable[[], EngineStats | None]) -> None:
        def series(kind: type, name: str, text: str, **extra: object) -> object:
            return kind(name, text, ["model"], registry=registry, **extra).labels(model)

        self._ttft = series(
            Histogram,
            "wakeserve_generation_time_to_first_token_seconds",
            "Arrival to first token.",
            buckets=TTFT_BUCKETS,
        )
        self._itl = series(
            Histogram,
            "wakeserve_generation_inter_token_seconds",
            "Time between two tokens of one sequence.",
            buckets=INTER_TOKEN_BUCKETS,
        )
        self._tokens = series(Counter, "wakeserve_generation_tokens", "Tokens generated (sampled).")
        self._prompt = series(Counter, "wakeserve_generation_prompt_tokens", "Prompt tokens prefilled.")
        self._cancelled = series(Counter, "wakeserve_generation_cancelled_requests", "Requests cancelled.")
        self._saved = series(
            Counter,
            "wakeserve_generation_cancelled_tokens_not_generated",
            "Tokens of cancelled requests' budgets (max_tokens) that were never computed.",
        )
        self._late = series(
            Counter,
            "wakeserve_generation_tokens_after_cancel",
            "Tokens computed for a cancelled sequence in the step during which its cancel arrived (never sent).",
        )
        gauges = {
            "wakeserve_generation_running_sequences": ("Sequences in the running batch.", "running_sequences"),
            "wakeserve_generation_waiting_requests": ("Requests waiting to join the batch.", "waiting_requests"),
            "wakeserve_generation_waiting_sequences": ("Sequences waiting to join the batch.", "waiting_sequences"),
            "wakeserve_generation_queued_tokens": (
                "Tokens still to generate at most: waiting budgets plus what running sequences may still add.",
                "queued_tokens",
            ),
        }
        for name, (text, field) in gauges.items():
            Gauge(name, text, ["model"], registry=registry).labels(model).set_function(_reader(stats, field))

    def prompt(self, tokens: int) -> None:
        self._prompt.inc(tokens)  # type: ignore[attr-defined]

    def generated(self, tokens: int) -> None:
        self._tokens.inc(tokens)  # type: ignore[attr-defined]

    def first_token(self, seconds: float) -> None:
        self._ttft.observe(seconds)  # type: ignore[attr-defined]

    def inter_token(self, seconds: float) -> None:
        self._itl.observe(seconds)  # type: ignore[attr-defined]

    def cancelled(self, saved_tokens: int) -> None:
        self._cancelled.inc()  # type: ignore[attr-defined]
        self._saved.inc(saved_tokens)  # type: ignore[attr-defined]

    def late_tokens(self, tokens: int) -> None:
        self._late.inc(tokens)  # type: ignore[attr-defined]


def _reader(stats: Callable[[], EngineStats | None], field: str) -> Callable[[], float]:
    def read() -> float:
        current = stats()
        return float(getattr(current, field)) if current is not None else 0.0

    return read
