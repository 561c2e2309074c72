"""The rollout controller of ``wakeserve up``: one per function, driving every replica's slots.

It knows the stable version (learned from the first replica, then whatever it promoted) and, during a
rollout, the candidate. Every tick it reads each ready replica's per-version statistics, makes sure every
replica has the candidate loaded and the current canary share set (replicas started during a rollout catch
up), asks :func:`wakeserve.canary.decide` what to do, and does it on every replica. A replica whose active
version is neither the stable nor the candidate one (it missed a promotion) is drained and replaced, so
no replica serves a version the controller no longer knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.errors import ConflictError, InvalidInputError
from wakeserve.canary import ACTIVE_PHASES, Action, CanaryPolicy, Phase, Window, decide
from wakeserve.pool import Replica, ReplicaPool, State

log = logging.getLogger(__name__)


_ROLLOUT_FIELDS = frozenset({"model_uri", "version", "skip_gates", "new_contract"})
_POLICY_FIELDS = frozenset(
    {"steps", "hold_s", "min_requests", "error_ratio", "error_floor", "latency_ratio", "latency_slack_s"}
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
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def percent(self) -> float:
        return self.request.policy.steps[self.step] if self.phase is Phase.CANARY else 0.0

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
            "step_metrics": {v: w.summary() for v, w in self.windows.items()},
            "total_metrics": {v: w.summary() for v, w in self.totals.items()},
            "events": self.events[-20:],
        }


class RolloutController:
    """Canary rollouts and version consistency for the replicas of one function."""

    def __init__(
        self, pool: ReplicaPool, client: httpx.AsyncClient, *, tick_s: float = 0.5, follow_replicas: bool = False
    ) -> None:
        self.follow_replicas = follow_replicas  # watch mode: replicas change versions themselves
        self.pool = pool
        self.client = client
        self.tick_s = tick_s
        self.stable: str | None = None
        self.rollout: Rollout | None = None
        self._cursors: dict[int, int] = {}
        self._lock = asyncio.Lock()

    # -- API -------------------------------------------------------------------------------------------------
    def start(self, request: RolloutRequest) -> Rollout:
        if self.rollout is not None and self.rollout.phase in ACTIVE_PHASES:
            raise ConflictError(f"a rollout of {self.pool.function} to {self.rollout.request.version} is running")
        if request.version == self.stable:
            raise ConflictError(f"{request.version} is already the stable version of {self.pool.function}")
        self.rollout = Rollout(request, self.stable)
        self.rollout.note(f"started: {request.model_uri or 'same artifacts'} as {request.version}")
        return self.rollout

    async def promote(self) -> Rollout:
        async with self._lock:
            rollout = self._running()
            if rollout.phase is not Phase.CANARY:
                raise ConflictError("the candidate is still loading on some replicas; promote once the canary runs")
            rollout.note("manual promotion")
            await self._promote(rollout)
            return rollout

    async def abort(self) -> Rollout:
        async with self._lock:
            rollout = self._running()
            await self._roll_back(rollout, Phase.ABORTED, "aborted by request")
            return rollout

    def _running(self) -> Rollout:
        if self.rollout is None or self.rollout.phase not in ACTIVE_PHASES:
            raise ConflictError(f"no rollout of {self.pool.function} is running")
        return self.rollout

    def describe(self) -> dict[str, Any]:
        return {
            "function": self.pool.function,
            "stable": self.stable,
            "rollout": self.rollout.describe() if self.rollout else None,
            "replicas": [
                {"index": r.index, "state": r.state.value, "version": r.version, "candidate": r.candidate}
                for r in self.pool.replicas
            ],
        }

    # -- the loop --------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with self._lock:
                    await self.tick(time.monotonic())
            except Exception:  # a failed pass must not end the controller
                log.exception("%s: rollout pass failed", self.pool.function)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick_s)

    async def tick(self, now: float) -> None:
        replicas = self.pool.ready()
        for gone in set(self._cursors) - {r.index for r in replicas}:
            del self._cursors[gone]
        states = await asyncio.gather(*(self._observe(r) for r in replicas), return_exceptions=True)
        observed = [(r, s) for r, s in zip(replicas, states) if isinstance(s, dict)]
        versions = [s["active"] for _, s in observed]
        if versions and (self.stable is None or self.follow_replicas):
            self.stable = max(versions, key=versions.count) if self.follow_replicas else versions[0]
        if not self.follow_replicas:
            await self._enforce_versions(observed)
        rollout = self.rollout
        if rollout is None or rollout.phase not in ACTIVE_PHASES:
            return
        if rollout.previous is None:
            rollout.previous = self.stable
        await self._converge(rollout, observed, now)

    async def _observe(self, replica: Replica) -> dict[str, Any]:
        after = self._cursors.get(replica.index, -1)
        response = await self.client.get(
            f"{replica.url}/wakeserve/models/{self.pool.function}/stats",
            params={"after": max(after, 0)},
            timeout=5,
        )
        response.raise_for_status()
        doc: dict[str, Any] = response.json()
        replica.version, replica.candidate = doc["active"], doc["candidate"]
        if after >= 0 and self.rollout is not None and self.rollout.phase is Phase.CANARY:
            for _, version, latency, ok in doc["samples"]:
                for table in (self.rollout.windows, self.rollout.totals):
                    table.setdefault(version, Window()).add(latency, ok)
        self._cursors[replica.index] = doc["last"]
        return doc

    def _known(self) -> set[str | None]:
        known = {self.stable}
        if self.rollout is not None and self.rollout.phase in ACTIVE_PHASES:
            known.add(self.rollout.request.version)
        return known

    async def _enforce_versions(self, observed: list[tuple[Replica, dict[str, Any]]]) -> None:
        known = self._known()
        for replica, state in observed:
            if state["active"] not in known and replica.state is State.READY:
                log.warning(
                    "%s-%d serves %s, which is not a known version (%s); replacing it",
                    self.pool.function, replica.index, state["active"], ", ".join(sorted(str(k) for k in known)),
                )  # fmt: skip
                await self.pool.replace(replica)

    async def _converge(self, rollout: Rollout, observed: list[tuple[Replica, dict[str, Any]]], now: float) -> None:
        version = rollout.request.version
        loaded = 0
        for replica, doc in observed:
            candidate = doc["candidate_slot"]
            if doc["active"] == version:
                loaded += 1  # promoted already (a replica that started after the promotion)
                continue
            busy = candidate is not None and candidate["state"] in ("loading", "gating")
            if candidate is None or (candidate["version"] != version and not busy):
                await self._post(replica, "slots", self._candidate_body(rollout))
                continue
            if candidate["state"] == "failed" and candidate["version"] == version:
                await self._roll_back(rollout, Phase.FAILED, f"replica {replica.index}: {candidate['error']}")
                return
            if candidate["state"] == "ready" and candidate["version"] == version:
                loaded += 1
                if rollout.phase is Phase.CANARY and doc["canary_percent"] != rollout.percent:
                    await self._post(replica, "slots/canary", {"percent": rollout.percent})
        if rollout.phase is Phase.LOADING:
            if observed and loaded == len(observed):
                rollout.phase = Phase.CANARY
                await self._enter_step(rollout, 0, now, observed)
            return
        stable = rollout.windows.setdefault(rollout.previous or "", Window())
        candidate_window = rollout.windows.setdefault(version, Window())
        verdict = decide(rollout.request.policy, rollout.step, rollout.step_started, now, stable, candidate_window)
        rollout.reason = verdict.reason
        if verdict.action is Action.ROLLBACK:
            await self._roll_back(rollout, Phase.ROLLED_BACK, verdict.reason)
        elif verdict.action is Action.ADVANCE:
            await self._enter_step(rollout, rollout.step + 1, now, observed)
        elif verdict.action is Action.PROMOTE:
            await self._promote(rollout)

    def _candidate_body(self, rollout: Rollout) -> dict[str, Any]:
        body: dict[str, Any] = {"version": rollout.request.version, "skip_gates": list(rollout.request.skip_gates)}
        if rollout.request.model_uri:
            body["model_uri"] = rollout.request.model_uri
        if rollout.request.new_contract:
            body["new_contract"] = True
        return body

    async def _enter_step(
        self, rollout: Rollout, step: int, now: float, observed: list[tuple[Replica, dict[str, Any]]]
    ) -> None:
        rollout.step, rollout.step_started, rollout.windows = step, now, {}
        rollout.note(f"{rollout.percent:g}% of new requests to {rollout.request.version}")
        await asyncio.gather(
            *(self._post(r, "slots/canary", {"percent": rollout.percent}) for r, _ in observed),
            return_exceptions=True,
        )

    async def _promote(self, rollout: Rollout) -> None:
        version = rollout.request.version
        # New replicas start with the new version from now on; then every running replica switches.
        self.pool.set_model(rollout.request.model_uri, version)
        self.stable, rollout.phase = version, Phase.PROMOTED
        results = await asyncio.gather(
            *(self._post(r, "slots/promote", {}) for r in self.pool.ready()), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, Exception)]
        rollout.note(f"promoted {version}" + (f" ({len(failed)} replicas will be replaced)" if failed else ""))

    async def _roll_back(self, rollout: Rollout, phase: Phase, reason: str) -> None:
        rollout.phase, rollout.reason = phase, reason
        rollout.note(f"{phase.value}: {reason}")
        await asyncio.gather(*(self._post(r, "slots/abort", {}) for r in self.pool.ready()), return_exceptions=True)

    # -- HTTP to replicas ------------------------------------------------------------------------------------
    async def _post(self, replica: Replica, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(
            f"{replica.url}/wakeserve/models/{self.pool.function}/{path}", json=body, timeout=10
        )
        if response.status_code >= 400:
            log.warning("%s-%d: %s answered %d: %s", self.pool.function, replica.index, path,
                        response.status_code, response.text[:300])  # fmt: skip
            response.raise_for_status()
        return dict(response.json())
