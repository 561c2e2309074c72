"""The rollout controller of ``wakeserve up``: one per function, driving every replica's slots.

It knows the stable version (learned from the first replica, then whatever it promoted) and, during a
rollout, the candidate. Every tick it reads each ready replica's per-version statistics, makes sure every
replica has the candidate loaded and the current canary share set (replicas started during a rollout catch
up), asks :func:`wakeserve.canary.decide` what to do, and does it on every replica. A replica whose active
version is neither the stable nor the candidate one (it missed a promotion) is drained and replaced, so
no replica serves a version the controller no longer knows. A version is its label and its artifact digest:
a replica serving a known label from other artifacts is just as unknown.

Replicas are driven through their admin listener (``Replica.admin_url``), with the admin token when set.

When a step does not get the candidate requests it needs (no traffic, or too little for a small share), the
controller asks the replicas to probe both versions with the function's golden inputs (see
:func:`wakeserve.canary.probe_rounds`), so every step still gets evidence and the rollout ends in bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx

from core.errors import ConflictError
from functions.hotswap.documents import (
    CanaryRequest,
    CandidateRequest,
    ProbeDocument,
    ProbeRequest,
    SlotState,
    StatsDocument,
)
from wakeserve.canary import ACTIVE_PHASES, Action, Phase, Window, decide, probe_rounds
from wakeserve.pool import Replica, ReplicaPool, State
from wakeserve.rollout_state import Rollout, RolloutRequest

__all__ = ["Rollout", "RolloutController", "RolloutRequest"]

log = logging.getLogger(__name__)


class RolloutController:
    """Canary rollouts and version consistency for the replicas of one function."""

    def __init__(
        self,
        pool: ReplicaPool,
        client: httpx.AsyncClient,
        *,
        tick_s: float = 0.5,
        follow_replicas: bool = False,
        admin_token: str | None = None,
    ) -> None:
        self.follow_replicas = follow_replicas  # watch mode: replicas change versions themselves
        self.pool = pool
        self.client = client
        self.tick_s = tick_s
        self.headers = {"authorization": f"Bearer {admin_token}"} if admin_token else {}
        self.stable: str | None = None
        self.stable_digest: str | None = None  # None: not known yet, any digest is taken
        self.candidate_digest: str | None = None
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
        self.candidate_digest = None
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

    @property
    def needs_replica(self) -> bool:
        """True while a rollout runs: its steps gather evidence on ready replicas, with user traffic or not."""
        return self.rollout is not None and self.rollout.phase in ACTIVE_PHASES

    def _running(self) -> Rollout:
        if self.rollout is None or self.rollout.phase not in ACTIVE_PHASES:
            raise ConflictError(f"no rollout of {self.pool.function} is running")
        return self.rollout

    def describe(self) -> dict[str, Any]:
        return {
            "function": self.pool.function,
            "stable": self.stable,
            "stable_digest": self.stable_digest,
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
        observed = [(r, s) for r, s in zip(replicas, states) if isinstance(s, StatsDocument)]
        versions = [s.active for _, s in observed]
        if versions and (self.stable is None or self.follow_replicas):
            self.stable = max(versions, key=versions.count) if self.follow_replicas else versions[0]
            self.stable_digest = None if self.follow_replicas else observed[0][1].active_digest
        if not self.follow_replicas:
            await self._enforce_versions(observed)
        rollout = self.rollout
        if rollout is None or rollout.phase not in ACTIVE_PHASES:
            return
        if rollout.previous is None:
            rollout.previous = self.stable
        await self._converge(rollout, observed, now)

    async def _observe(self, replica: Replica) -> StatsDocument:
        after = self._cursors.get(replica.index, -1)
        response = await self.client.get(
            f"{replica.admin_url}/wakeserve/models/{self.pool.function}/stats",
            params={"after": max(after, 0)},
            headers=self.headers,
            timeout=5,
        )
        response.raise_for_status()
        doc = StatsDocument.model_validate(response.json())
        replica.version, replica.candidate = doc.active, doc.candidate
        if after >= 0 and self.rollout is not None and self.rollout.phase is Phase.CANARY:
            for _, version, latency, ok in doc.samples:
                for table in (self.rollout.windows, self.rollout.totals):
                    table.setdefault(version, Window()).add(latency, ok)
        self._cursors[replica.index] = doc.last
        return doc

    def _known(self) -> dict[str | None, str | None]:
        """Known labels and the digest each must have (None: not learned yet, any)."""
        known = {self.stable: self.stable_digest}
        if self.rollout is not None and self.rollout.phase in ACTIVE_PHASES:
            known[self.rollout.request.version] = self.candidate_digest
        return known

    async def _enforce_versions(self, observed: list[tuple[Replica, StatsDocument]]) -> None:
        known = self._known()
        for replica, state in observed:
            if replica.state is not State.READY:
                continue
            label_known = state.active in known
            digest = known.get(state.active)
            if label_known and (digest is None or state.active_digest in (None, digest)):
                continue
            why = "not a known version" if not label_known else f"digest {state.active_digest}, not {digest}"
            log.warning(
                "%s-%d serves %s (%s); known: %s; replacing it",
                self.pool.function, replica.index, state.active, why,
                ", ".join(f"{k} ({d or 'any digest'})" for k, d in sorted(known.items(), key=str)),
            )  # fmt: skip
            await self.pool.replace(replica)

    async def _converge(self, rollout: Rollout, observed: list[tuple[Replica, StatsDocument]], now: float) -> None:
        version = rollout.request.version
        loaded: list[Replica] = []
        for replica, doc in observed:
            candidate = doc.candidate_slot
            if doc.active == version:
                loaded.append(replica)  # promoted already (a replica that started after the promotion)
                continue
            if candidate is None or (candidate.version != version and not candidate.state.busy):
                try:
                    await self._post(replica, "slots", self._candidate_body(rollout))
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code in (409, 429) or exc.response.status_code >= 500:
                        continue  # busy or unwell (logged): the next pass asks again
                    # The replica refuses this candidate (not allowed, bad request): asking again cannot help.
                    reason = f"replica {replica.index} refused the candidate: {_error_text(exc.response)}"
                    await self._roll_back(rollout, Phase.FAILED, reason)
                    return
                continue
            if candidate.state is SlotState.FAILED and candidate.version == version:
                await self._roll_back(rollout, Phase.FAILED, f"replica {replica.index}: {candidate.error}")
                return
            if candidate.state is SlotState.READY and candidate.version == version:
                if self.candidate_digest is None:
                    self.candidate_digest = candidate.digest
                elif candidate.digest not in (None, self.candidate_digest):
                    reason = f"replica {replica.index} loaded {version} with digest {candidate.digest}, "
                    await self._roll_back(rollout, Phase.FAILED, reason + f"others with {self.candidate_digest}")
                    return
                loaded.append(replica)
                if rollout.phase is Phase.CANARY and doc.canary_percent != rollout.percent:
                    await self._post(replica, "slots/canary", CanaryRequest(percent=rollout.percent).model_dump())
        if rollout.phase is Phase.LOADING:
            if observed and len(loaded) == len(observed):
                rollout.phase = Phase.CANARY
                await self._enter_step(rollout, 0, now, observed)
            return
        stable, candidate_window, probes = rollout.evidence()
        policy = rollout.request.policy
        rounds = probe_rounds(policy, rollout.step_started, now, candidate_window, probes.candidate)
        if rounds and not rollout.probe_refused:
            probing = [r for r, doc in observed if doc.candidate == version and doc.active == rollout.previous]
            await asyncio.gather(*(self._probe(rollout, r, rounds) for r in probing))
        verdict = decide(policy, rollout.step, rollout.step_started, now, stable, candidate_window, probes)
        rollout.reason = verdict.reason
        if verdict.action is not Action.HOLD:
            rollout.basis = verdict.basis
        if verdict.action is Action.ROLLBACK:
            await self._roll_back(rollout, Phase.ROLLED_BACK, verdict.reason)
        elif verdict.action is Action.ADVANCE:
            await self._enter_step(rollout, rollout.step + 1, now, observed)
        elif verdict.action is Action.PROMOTE:
            await self._promote(rollout)

    async def _probe(self, rollout: Rollout, replica: Replica, rounds: int) -> None:
        """Golden-input calls on both versions of one replica, recorded as synthetic evidence."""
        url = f"{replica.admin_url}/wakeserve/models/{self.pool.function}/slots/probe"
        try:
            body = ProbeRequest(rounds=rounds).model_dump()
            response = await self.client.post(url, json=body, headers=self.headers, timeout=30)
        except httpx.HTTPError as exc:
            log.warning("%s-%d: probe failed: %s", self.pool.function, replica.index, exc)
            return
        if response.status_code >= 400:  # promoted or aborted meanwhile: the next observation sees why
            return
        doc = ProbeDocument.model_validate(response.json())
        if doc.refused and not rollout.probe_refused:
            rollout.probe_refused = doc.refused
            rollout.note(f"no synthetic probes: {doc.refused}")
        for sample in doc.samples:
            for table in (rollout.synthetic, rollout.synthetic_totals):
                table.setdefault(sample.version, Window()).add(sample.latency_s, sample.ok)

    def _candidate_body(self, rollout: Rollout) -> dict[str, Any]:
        request = rollout.request
        body = CandidateRequest(
            model_uri=request.model_uri,
            version=request.version,
            skip_gates=list(request.skip_gates),
            new_contract=request.new_contract,
        )
        return body.model_dump(mode="json", exclude_none=True)

    async def _enter_step(
        self, rollout: Rollout, step: int, now: float, observed: list[tuple[Replica, StatsDocument]]
    ) -> None:
        rollout.step, rollout.step_started, rollout.windows, rollout.synthetic = step, now, {}, {}
        rollout.note(f"{rollout.percent:g}% of new requests to {rollout.request.version}")
        body = CanaryRequest(percent=rollout.percent).model_dump()
        await asyncio.gather(*(self._post(r, "slots/canary", body) for r, _ in observed), return_exceptions=True)

    async def _promote(self, rollout: Rollout) -> None:
        version = rollout.request.version
        # New replicas start with the new version from now on; then every running replica switches.
        self.pool.set_model(rollout.request.model_uri, version)
        self.stable, self.stable_digest, rollout.phase = version, self.candidate_digest, Phase.PROMOTED
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
            f"{replica.admin_url}/wakeserve/models/{self.pool.function}/{path}",
            json=body,
            headers=self.headers,
            timeout=10,
        )
        if response.status_code >= 400:
            log.warning("%s-%d: %s answered %d: %s", self.pool.function, replica.index, path,
                        response.status_code, response.text[:300])  # fmt: skip
            response.raise_for_status()
        return dict(response.json())


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))[:300]
    except ValueError:
        return response.text[:300]
