"""The rollout controller's decisions against replicas simulated at their control API: loading, step advance,
promotion, rollback on errors or latency, synthetic evidence when no user traffic comes, version consistency.

Time is the controller's ``now``, passed to each tick, so the hold and probe delays are exact."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from functions.hotswap.documents import CandidateSlotDocument, ProbeDocument, ProbeSample, SlotState, StatsDocument
from wakeserve.canary import CanaryPolicy
from wakeserve.pool import Replica, State
from wakeserve.rollout import RolloutController, RolloutRequest

STABLE, NEW = "v1", "v2"


@dataclass
class Behaviour:
    """How one version behaves: latency in seconds and the share of calls that fail."""

    latency_s: float = 0.010
    error_every: int = 0  # every n-th call fails; 0: none

    def call(self, n: int) -> tuple[float, bool]:
        return self.latency_s, not (self.error_every and n % self.error_every == 0)


@dataclass
class FakeReplica:
    """A replica's control API: slots, canary share, stats and probes, with no model behind it."""

    index: int
    active: str = STABLE
    candidate: CandidateSlotDocument | None = None
    load_state: SlotState = SlotState.READY
    refuse_probes: str | None = None
    refuse_load: tuple[int, str] | None = None  # the status and reason a replica refuses a candidate with
    canary_percent: float = 0.0
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    samples: list[tuple[int, str, float, bool]] = field(default_factory=list)
    calls: dict[str, list[Any]] = field(default_factory=dict)
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    served: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def serve(self, version: str, n: int) -> None:
        for _ in range(n):
            latency, ok = self.behaviour.get(version, Behaviour()).call(next(self.served))
            self.samples.append((next(self.seq), version, latency, ok))

    def handle(self, request: httpx.Request) -> httpx.Response:
        action = request.url.path.split("/models/echo/")[1]
        body = orjson.loads(request.content) if request.content else None
        self.calls.setdefault(action, []).append(body)
        if action == "stats":
            after = int(request.url.params["after"])
            ready = self.candidate is not None and self.candidate.state is SlotState.READY
            doc = StatsDocument(
                last=self.samples[-1][0] if self.samples else 0,
                versions={},
                samples=[s for s in self.samples if s[0] > after],
                active=self.active,
                candidate=self.candidate.version if ready and self.candidate else None,
                candidate_slot=self.candidate,
                canary_percent=self.canary_percent,
            )
            return httpx.Response(200, json=doc.model_dump(mode="json"))
        if action == "slots" and self.refuse_load is not None:
            status, reason = self.refuse_load
            return httpx.Response(status, json={"error": reason, "code": "refused", "retryable": False})
        if action == "slots":
            self.candidate = CandidateSlotDocument(version=body["version"], state=self.load_state, error="golden: no")
        elif action == "slots/canary":
            self.canary_percent = body["percent"]
        elif action == "slots/promote":
            assert self.candidate is not None
            self.active, self.candidate, self.canary_percent = self.candidate.version, None, 0.0
        elif action == "slots/abort":
            self.candidate, self.canary_percent = None, 0.0
        elif action == "slots/probe":
            assert self.candidate is not None
            if self.refuse_probes:
                return httpx.Response(200, json=ProbeDocument(samples=[], refused=self.refuse_probes).model_dump())
            samples = []
            for i in range(body["rounds"]):
                for version in (self.active, self.candidate.version)[:: 1 if i % 2 == 0 else -1]:
                    latency, ok = self.behaviour.get(version, Behaviour()).call(next(self.served))
                    samples.append(ProbeSample(version=version, latency_s=latency, ok=ok))
            return httpx.Response(200, json=ProbeDocument(samples=samples).model_dump(mode="json"))
        return httpx.Response(200, json={})


class FakePool:
    """The parts of a replica pool the controller uses."""

    function = "echo"

    def __init__(self, replicas: list[FakeReplica]) -> None:
        self.fakes = {r.index: r for r in replicas}
        self.replicas = [
            Replica("echo", r.index, 9000 + r.index, None, 0.0, state=State.READY)  # type: ignore[arg-type]
            for r in replicas
        ]
        self.replaced: list[int] = []
        self.model: tuple[str | None, str] | None = None

    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.state is State.READY]

    async def replace(self, replica: Replica) -> None:
        self.replaced.append(replica.index)
        self.replicas.remove(replica)

    def set_model(self, model_uri: str | None, version: str) -> None:
        self.model = (model_uri, version)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(lambda request: self.fakes[(request.url.port or 0) - 9000].handle(request))


TERMINAL = {"promoted", "rolled_back", "aborted", "failed"}
POLICY = {"steps": [50, 100], "hold_s": 2, "min_requests": 20, "probe_after_s": 3, "probe_rounds": 5}


def run_rollout(
    replicas: list[FakeReplica], user: dict[str, int], policy: dict[str, Any], until: float = 30.0
) -> tuple[dict[str, Any], FakePool, float]:
    """Tick every 0.5 s of controller time, each replica serving ``user[version]`` user requests between
    ticks, until the rollout ends; the final state, the pool and the time it ended."""

    async def scenario() -> tuple[dict[str, Any], FakePool, float]:
        pool = FakePool(replicas)
        async with httpx.AsyncClient(transport=pool.transport()) as client:
            controller = RolloutController(pool, client)  # type: ignore[arg-type]
            now = 0.0
            await controller.tick(now)
            controller.start(RolloutRequest.from_json({"version": NEW, "model_uri": "s3://m/v2", **policy}))
            while now < until:
                now += 0.5
                for replica in replicas:
                    for version, n in user.items():
                        replica.serve(version, n)
                await controller.tick(now)
                state = controller.describe()
                if state["rollout"]["phase"] in TERMINAL:
                    return state, pool, now
            return controller.describe(), pool, now

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    ("user", "behaviour", "phase", "basis", "says"),
    [
        ({STABLE: 30, NEW: 30}, {}, "promoted", "user", "healthy at 100%"),
        ({}, {}, "promoted", "synthetic", "on 20 synthetic probes"),
        ({STABLE: 1}, {}, "promoted", "synthetic", "synthetic probes"),  # too little candidate traffic
        ({STABLE: 30, NEW: 30}, {NEW: Behaviour(error_every=4)}, "rolled_back", "user", "over 1.5x the stable 0.00%"),
        ({STABLE: 30, NEW: 30}, {NEW: Behaviour(latency_s=0.1)}, "rolled_back", "user", "p99 latency 100.0 ms"),
        ({}, {NEW: Behaviour(error_every=2)}, "rolled_back", "synthetic", "synthetic probes: error rate"),
        ({}, {NEW: Behaviour(latency_s=0.1)}, "rolled_back", "synthetic", "synthetic probes: median latency"),
    ],
    ids=["user", "no-traffic", "little-traffic", "user-errors", "user-latency", "probe-errors", "probe-latency"],
)
def test_step_decisions(
    user: dict[str, int], behaviour: dict[str, Behaviour], phase: str, basis: str, says: str
) -> None:
    replicas = [FakeReplica(i, behaviour=behaviour) for i in range(2)]
    state, pool, ended = run_rollout(replicas, user, POLICY)
    rollout = state["rollout"]
    assert rollout["phase"] == phase, rollout
    assert rollout["basis"] == basis and says in rollout["reason"]
    probed = sum(len(r.calls.get("slots/probe", [])) for r in replicas)
    if basis == "user":
        assert probed == 0 and all(m["requests"] == 0 for m in rollout["synthetic_total_metrics"].values())
    else:
        assert probed > 0 and rollout["synthetic_total_metrics"][NEW]["requests"] >= 20
        assert (
            rollout["synthetic_total_metrics"][STABLE]["requests"]
            == rollout["synthetic_total_metrics"][NEW]["requests"]
        )  # both versions probed alike
    if phase == "promoted":
        assert state["stable"] == NEW and pool.model == ("s3://m/v2", NEW)
        assert all(r.active == NEW for r in replicas)
        assert ended <= 2 * (POLICY["probe_after_s"] + 1.5) + 1.0  # two steps, each within its bound
    else:
        assert state["stable"] == STABLE and all(r.active == STABLE and r.candidate is None for r in replicas)


def test_no_probe_before_the_step_has_waited_for_user_requests() -> None:
    replicas = [FakeReplica(0)]
    state, _, ended = run_rollout(replicas, {}, {**POLICY, "probe_after_s": 20}, until=19.5)
    rollout = state["rollout"]
    assert rollout["phase"] == "canary" and rollout["step"] == 0 and ended == 19.5
    assert "waiting for 20 more candidate requests" in rollout["reason"]
    assert "slots/probe" not in replicas[0].calls


def test_a_candidate_that_cannot_be_probed_waits_for_user_traffic_and_says_why() -> None:
    replicas = [FakeReplica(0, refuse_probes="version v2 declares new inputs")]
    state, _, _ = run_rollout(replicas, {}, POLICY, until=10.0)
    rollout = state["rollout"]
    assert rollout["phase"] == "canary" and rollout["probe_refused"] == "version v2 declares new inputs"
    assert len(replicas[0].calls["slots/probe"]) == 1  # not asked again
    assert any("no synthetic probes" in e["event"] for e in rollout["events"])


@pytest.mark.parametrize(
    ("refusal", "phase"),
    [
        ((403, "model_uri s3://wakeserve-payloads/x is not on the allowlist"), "failed"),
        ((400, "skipping the latency gate is not allowed here"), "failed"),
        ((409, "a candidate is still loading"), "loading"),
        ((503, "not ready"), "loading"),
    ],
    ids=["not-allowed", "bad-request", "busy-asks-again", "unwell-asks-again"],
)
def test_a_candidate_a_replica_refuses_fails_the_rollout_at_once(refusal: tuple[int, str], phase: str) -> None:
    replicas = [FakeReplica(0, refuse_load=refusal)]
    state, _, _ = run_rollout(replicas, {}, POLICY, until=3.0)
    rollout = state["rollout"]
    assert rollout["phase"] == phase
    if phase == "failed":
        assert rollout["reason"] == f"replica 0 refused the candidate: {refusal[1]}"
        assert len(replicas[0].calls["slots"]) == 1  # not asked again
    else:
        assert len(replicas[0].calls["slots"]) > 1


def test_loading_waits_for_every_replica_then_sets_the_first_share() -> None:
    replicas = [FakeReplica(0), FakeReplica(1, load_state=SlotState.LOADING)]
    state, _, _ = run_rollout(replicas, {}, POLICY, until=2.0)
    assert state["rollout"]["phase"] == "loading"
    assert replicas[0].calls["slots"][0] == {"model_uri": "s3://m/v2", "version": NEW, "new_contract": False,
                                             "skip_gates": [], "promote": False}  # fmt: skip
    assert len(replicas[1].calls["slots"]) == 1  # a loading candidate is not asked for again
    assert replicas[0].canary_percent == 0


def test_a_candidate_failing_its_gates_on_one_replica_fails_the_rollout_everywhere() -> None:
    replicas = [FakeReplica(0), FakeReplica(1, load_state=SlotState.FAILED)]
    state, _, _ = run_rollout(replicas, {}, POLICY)
    assert state["rollout"]["phase"] == "failed" and "replica 1: golden: no" in state["rollout"]["reason"]
    assert all(r.candidate is None and "slots/abort" in r.calls for r in replicas)


@pytest.mark.parametrize(
    ("active", "replaced"),
    [(STABLE, False), ("rogue", True)],
)
def test_a_replica_on_an_unknown_version_is_replaced(active: str, replaced: bool) -> None:
    async def scenario() -> FakePool:
        replicas = [FakeReplica(0), FakeReplica(1, active=active)]
        pool = FakePool(replicas)
        async with httpx.AsyncClient(transport=pool.transport()) as client:
            controller = RolloutController(pool, client)  # type: ignore[arg-type]
            await controller.tick(0.0)
            assert controller.stable == STABLE
            await controller.tick(0.5)
        return pool

    pool = asyncio.run(scenario())
    assert pool.replaced == ([1] if replaced else [])


def test_policy_fields_for_probes_are_validated() -> None:
    request = RolloutRequest.from_json({"version": NEW, "probe_after_s": 4, "probe_rounds": 7})
    assert request.policy == CanaryPolicy(probe_after_s=4, probe_rounds=7)
    for bad in ({"probe_after_s": -1}, {"probe_rounds": 0}, {"probe_rounds": 51}):
        with pytest.raises(Exception, match="probe"):
            RolloutRequest.from_json({"version": NEW, **bad})


def test_a_running_rollout_needs_a_replica_and_a_finished_one_does_not() -> None:
    async def scenario() -> list[bool]:
        pool = FakePool([FakeReplica(0)])
        async with httpx.AsyncClient(transport=pool.transport()) as client:
            controller = RolloutController(pool, client)  # type: ignore[arg-type]
            seen = [controller.needs_replica]
            await controller.tick(0.0)
            controller.start(RolloutRequest.from_json({"version": NEW}))
            seen.append(controller.needs_replica)
            await controller.abort()
            seen.append(controller.needs_replica)
        return seen

    assert asyncio.run(scenario()) == [False, True, False]
