"""Canary analysis and the rollout state machine, pure: the controller feeds it observations and acts on its
decisions (see :mod:`wakeserve.rollout`).

A rollout loads the candidate beside the stable version on every replica (each replica gates it), then shifts
a growing share of new requests to it, step by step (1 % → 5 % → 25 % → 100 % by default, each held for
``hold_s`` and until the candidate has served ``min_requests`` in the step), and finally promotes it. At every
observation the candidate is compared with the stable version over the current step: it is rolled back when
its error rate is above ``error_ratio`` times the stable one and above ``error_floor``, or when its p99
latency is above ``latency_ratio`` times the stable p99 (and more than ``latency_slack_s`` above it).
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

import numpy as np

DEFAULT_STEPS = (1.0, 5.0, 25.0, 100.0)


class Phase(enum.StrEnum):
    LOADING = "loading"  # replicas load and gate the candidate
    CANARY = "canary"  # a share of traffic goes to the candidate
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"  # automatic, on a threshold
    ABORTED = "aborted"  # manual
    FAILED = "failed"  # the candidate failed a gate on some replica


ACTIVE_PHASES = frozenset({Phase.LOADING, Phase.CANARY})


@dataclass(frozen=True)
class CanaryPolicy:
    steps: tuple[float, ...] = DEFAULT_STEPS
    hold_s: float = 30.0
    min_requests: int = 20
    error_ratio: float = 1.5
    error_floor: float = 0.001
    latency_ratio: float = 1.5
    latency_slack_s: float = 0.005

    def __post_init__(self) -> None:
        if not self.steps or any(not 0 < s <= 100 for s in self.steps) or list(self.steps) != sorted(self.steps):
            raise ValueError(f"steps must be increasing percentages in (0, 100], got {list(self.steps)}")
        if self.steps[-1] != 100:
            raise ValueError("the last step must be 100 (the candidate takes all traffic before promotion)")
        if self.hold_s < 0 or self.min_requests < 1 or self.error_ratio < 1 or self.latency_ratio < 1:
            raise ValueError("hold_s >= 0, min_requests >= 1, error_ratio >= 1 and latency_ratio >= 1 are required")


@dataclass
class Window:
    """Requests of one version during one step: counts and (bounded) latencies."""

    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    max_samples: int = 50_000
    _rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)  # noqa: S311

    def add(self, latency_s: float, ok: bool) -> None:
        self.requests += 1
        self.errors += 0 if ok else 1
        if len(self.latencies) < self.max_samples:
            self.latencies.append(latency_s)
        else:  # keep a uniform sample of the step once the buffer is full
            slot = self._rng.randrange(self.requests)
            if slot < self.max_samples:
                self.latencies[slot] = latency_s

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile(self, q: float) -> float | None:
        return float(np.quantile(self.latencies, q)) if self.latencies else None

    def summary(self) -> dict[str, object]:
        def ms(q: float) -> float | None:
            value = self.quantile(q)
            return None if value is None else round(value * 1000, 3)

        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 5),
            "p50_ms": ms(0.5),
            "p95_ms": ms(0.95),
            "p99_ms": ms(0.99),
        }


class Action(enum.StrEnum):
    HOLD = "hold"
    ADVANCE = "advance"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str


def judge(stable: Window, candidate: Window, policy: CanaryPolicy) -> str | None:
    """Why the candidate must be rolled back, or None while it is as good as the stable version."""
    if candidate.requests < policy.min_requests:
        return None
    rate_c, rate_s = candidate.error_rate, stable.error_rate
    if rate_c > policy.error_floor and rate_c > policy.error_ratio * rate_s:
        return (
            f"error rate {rate_c:.2%} ({candidate.errors}/{candidate.requests}) is over "
            f"{policy.error_ratio:g}x the stable {rate_s:.2%} and over {policy.error_floor:.2%}"
        )
    if stable.requests >= policy.min_requests:
        p99_c, p99_s = candidate.quantile(0.99), stable.quantile(0.99)
        assert p99_c is not None and p99_s is not None
        if p99_c > policy.latency_ratio * p99_s and p99_c - p99_s > policy.latency_slack_s:
            return (
                f"p99 latency {p99_c * 1000:.1f} ms is over {policy.latency_ratio:g}x the stable {p99_s * 1000:.1f} ms"
            )
    return None


def decide(
    policy: CanaryPolicy, step: int, step_started: float, now: float, stable: Window, candidate: Window
) -> Verdict:
    """What to do at step ``step`` (an index into ``policy.steps``) of a healthy canary."""
    problem = judge(stable, candidate, policy)
    if problem is not None:
        return Verdict(Action.ROLLBACK, problem)
    held = now - step_started
    if held < policy.hold_s:
        return Verdict(Action.HOLD, f"holding {policy.steps[step]:g}% for {policy.hold_s - held:.0f}s more")
    if candidate.requests < policy.min_requests:
        return Verdict(Action.HOLD, f"waiting for {policy.min_requests - candidate.requests} more candidate requests")
    if step + 1 >= len(policy.steps):
        return Verdict(Action.PROMOTE, f"healthy at {policy.steps[step]:g}% for {held:.0f}s")
    return Verdict(Action.ADVANCE, f"healthy at {policy.steps[step]:g}% for {held:.0f}s")
