"""Canary analysis and the rollout state machine, pure: the controller feeds it observations and acts on its
decisions (see :mod:`wakeserve.rollout`).

A rollout loads the candidate beside the stable version on every replica (each replica gates it), then shifts
a growing share of new requests to it, step by step (1 % → 5 % → 25 % → 100 % by default, each held for
``hold_s`` and until the candidate has served ``min_requests`` in the step), and finally promotes it. At every
observation the candidate is compared with the stable version over the current step: it is rolled back when
its error rate is above ``error_ratio`` times the stable one and above ``error_floor``, or when its p99
latency is above ``latency_ratio`` times the stable p99 (and more than ``latency_slack_s`` above it).

When real requests do not reach the candidate (no traffic, or too little for a small share), the controller
probes both versions with the function's golden inputs once a step has run ``probe_after_s`` without enough
candidate requests: ``probe_rounds`` calls on each version per replica and observation, interleaved, until the
candidate has ``min_requests`` of them. That synthetic evidence is kept apart from user traffic and judged on
its own: errors as above, latency on the median (probes are single sequential calls, whose tail is timer and
scheduler noise rather than load). A step then ends within ``max(hold_s, probe_after_s + a few observations)``.
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
    probe_after_s: float = 10.0
    probe_rounds: int = 5

    def __post_init__(self) -> None:
        if not self.steps or any(not 0 < s <= 100 for s in self.steps) or list(self.steps) != sorted(self.steps):
            raise ValueError(f"steps must be increasing percentages in (0, 100], got {list(self.steps)}")
        if self.steps[-1] != 100:
            raise ValueError("the last step must be 100 (the candidate takes all traffic before promotion)")
        if self.hold_s < 0 or self.min_requests < 1 or self.error_ratio < 1 or self.latency_ratio < 1:
            raise ValueError("hold_s >= 0, min_requests >= 1, error_ratio >= 1 and latency_ratio >= 1 are required")
        if self.probe_after_s < 0 or not 1 <= self.probe_rounds <= 50:
            raise ValueError("probe_after_s >= 0 and probe_rounds from 1 to 50 are required")


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


@dataclass
class Evidence:
    """The stable version's and the candidate's windows over one step, of one kind of traffic."""

    stable: Window = field(default_factory=Window)
    candidate: Window = field(default_factory=Window)


class Action(enum.StrEnum):
    HOLD = "hold"
    ADVANCE = "advance"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


class Basis(enum.StrEnum):
    """What a step's verdict rests on."""

    USER = "user"
    SYNTHETIC = "synthetic"  # golden-input probes of both versions


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str
    basis: Basis | None = None


def judge(stable: Window, candidate: Window, policy: CanaryPolicy, *, synthetic: bool = False) -> str | None:
    """Why the candidate must be rolled back, or None while it is as good as the stable version."""
    if candidate.requests < policy.min_requests:
        return None
    prefix = "synthetic probes: " if synthetic else ""
    rate_c, rate_s = candidate.error_rate, stable.error_rate
    if rate_c > policy.error_floor and rate_c > policy.error_ratio * rate_s:
        return (
            f"{prefix}error rate {rate_c:.2%} ({candidate.errors}/{candidate.requests}) is over "
            f"{policy.error_ratio:g}x the stable {rate_s:.2%} and over {policy.error_floor:.2%}"
        )
    if stable.requests >= policy.min_requests:
        q, name = (0.5, "median") if synthetic else (0.99, "p99")
        c, s = candidate.quantile(q), stable.quantile(q)
        assert c is not None and s is not None
        if c > policy.latency_ratio * s and c - s > policy.latency_slack_s:
            return (
                f"{prefix}{name} latency {c * 1000:.1f} ms is over {policy.latency_ratio:g}x "
                f"the stable {s * 1000:.1f} ms"
            )
    return None


def probe_rounds(policy: CanaryPolicy, step_started: float, now: float, user: Window, synthetic: Window) -> int:
    """Golden-input rounds to ask each replica for now (0: none): only once the step has waited
    ``probe_after_s`` for candidate requests that did not come, and only until the probes suffice."""
    if now - step_started < policy.probe_after_s or user.requests >= policy.min_requests:
        return 0
    return max(0, min(policy.probe_rounds, policy.min_requests - synthetic.requests))


def decide(
    policy: CanaryPolicy,
    step: int,
    step_started: float,
    now: float,
    stable: Window,
    candidate: Window,
    synthetic: Evidence | None = None,
) -> Verdict:
    """What to do at step ``step`` (an index into ``policy.steps``) of a healthy canary, from the user traffic
    of both versions and, when there is any, the synthetic probes of both."""
    probes = synthetic or Evidence()
    problem = judge(stable, candidate, policy)
    if problem is not None:
        return Verdict(Action.ROLLBACK, problem, Basis.USER)
    problem = judge(probes.stable, probes.candidate, policy, synthetic=True)
    if problem is not None:
        return Verdict(Action.ROLLBACK, problem, Basis.SYNTHETIC)
    held = now - step_started
    if held < policy.hold_s:
        return Verdict(Action.HOLD, f"holding {policy.steps[step]:g}% for {policy.hold_s - held:.0f}s more")
    if candidate.requests >= policy.min_requests:
        basis, on = Basis.USER, ""
    elif probes.candidate.requests >= policy.min_requests:
        basis, on = Basis.SYNTHETIC, f" on {probes.candidate.requests} synthetic probes"
    else:
        waiting = f"waiting for {policy.min_requests - candidate.requests} more candidate requests"
        if probes.candidate.requests:
            waiting += f" ({probes.candidate.requests}/{policy.min_requests} synthetic probes so far)"
        return Verdict(Action.HOLD, waiting)
    healthy = f"healthy at {policy.steps[step]:g}% for {held:.0f}s{on}"
    return Verdict(Action.PROMOTE if step + 1 >= len(policy.steps) else Action.ADVANCE, healthy, basis)
