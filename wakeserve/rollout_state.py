"""A rollout as the controller of ``wakeserve up`` keeps it: the request that started it (validated), its
phase and step, and the evidence of each step, user traffic and synthetic probes apart."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidInputError
from wakeserve.canary import Basis, CanaryPolicy, Evidence, Phase, Window

log = logging.getLogger("wakeserve.rollout")


_ROLLOUT_FIELDS = frozenset({"model_uri", "version", "skip_gates", "new_contract"})
_POLICY_FIELDS = frozenset(
    {
        "steps",
        "hold_s",
        "min_requests",
        "error_ratio",
        "error_floor",
        "latency_ratio",
        "latency_slack_s",
        "probe_after_s",
        "probe_rounds",
    }
)


@dataclass
class RolloutRequest:
    model_uri: str | None
    version: str
    policy: CanaryPolicy
    skip_gates: tuple[str, ...] = ()
    new_contract: bool = False

    @classmethod
    def from_json(cls, doc: Any) -> RolloutRequest:
        if not isinstance(doc, dict):
            raise InvalidInputError("expected a JSON object")
        unknown = set(doc) - _ROLLOUT_FIELDS - _POLICY_FIELDS
        if unknown:
            raise InvalidInputError(f"unknown field(s) {sorted(unknown)}")
        version = doc.get("version")
        if not isinstance(version, str) or not version:
            raise InvalidInputError("'version' (the label the new version's responses carry) is required")
        uri = doc.get("model_uri")
        if uri is not None and (not isinstance(uri, str) or not uri):
            raise InvalidInputError("'model_uri' must be a non-empty string")
        try:
            fields: dict[str, Any] = {k: v for k, v in doc.items() if k in _POLICY_FIELDS}
            if "steps" in fields:
                fields["steps"] = tuple(float(x) for x in fields["steps"])
            policy = CanaryPolicy(**fields)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"invalid rollout policy: {exc}") from exc
        skip = doc.get("skip_gates") or []
        if not isinstance(skip, list) or not all(isinstance(g, str) for g in skip):
            raise InvalidInputError("skip_gates must be a list of gate names")
        return cls(uri, version, policy, tuple(skip), bool(doc.get("new_contract", False)))


@dataclass
class Rollout:
    request: RolloutRequest
    previous: str | None
    phase: Phase = Phase.LOADING
    step: int = 0
    step_started: float = 0.0
    started: float = field(default_factory=time.time)
    reason: str = ""
    windows: dict[str, Window] = field(default_factory=dict)
    totals: dict[str, Window] = field(default_factory=dict)
    # Golden-input probes, never mixed with user traffic: this step's, and the whole rollout's.
    synthetic: dict[str, Window] = field(default_factory=dict)
    synthetic_totals: dict[str, Window] = field(default_factory=dict)
    basis: Basis | None = None  # what the last step decision rested on
    probe_refused: str = ""  # why the replicas cannot probe this candidate (a new contract)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def percent(self) -> float:
        return self.request.policy.steps[self.step] if self.phase is Phase.CANARY else 0.0

    def evidence(self) -> tuple[Window, Window, Evidence]:
        """This step's user windows of the stable version and the candidate, and their synthetic probes."""
        stable, candidate = self.previous or "", self.request.version
        user = (self.windows.setdefault(stable, Window()), self.windows.setdefault(candidate, Window()))
        probes = Evidence(self.synthetic.setdefault(stable, Window()), self.synthetic.setdefault(candidate, Window()))
        return user[0], user[1], probes

    def note(self, what: str) -> None:
        log.info("rollout of %s: %s", self.request.version, what)
        self.events.append({"at": round(time.time(), 3), "phase": self.phase.value, "event": what})
        del self.events[:-100]

    def describe(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value,
            "candidate": self.request.version,
            "model_uri": self.request.model_uri,
            "stable": self.previous,
            "percent": self.percent,
            "step": self.step,
            "steps": list(self.request.policy.steps),
            "reason": self.reason,
            "basis": self.basis.value if self.basis else None,
            "probe_refused": self.probe_refused or None,
            "step_metrics": {v: w.summary() for v, w in self.windows.items()},
            "total_metrics": {v: w.summary() for v, w in self.totals.items()},
            "synthetic_step_metrics": {v: w.summary() for v, w in self.synthetic.items()},
            "synthetic_total_metrics": {v: w.summary() for v, w in self.synthetic_totals.items()},
            "events": self.events[-20:],
        }
