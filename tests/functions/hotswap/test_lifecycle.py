"""Hot swap inside one model: a candidate loads beside the active version, is gated, then promoted or dropped;
requests already bound to a version finish on it. In-process, with echo versions and a blocking test function."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from core.errors import ConflictError
from functions.contract import TensorSpec
from functions.echo.function import Echo
from functions.hotswap.candidate import CandidateSpec
from functions.hotswap.gates import GatePolicy, load_golden
from functions.hotswap.watch import package_dir
from functions.serving.metrics import PredictorMetrics
from functions.serving.runtime import FunctionModel
from functions.serving.v2json import parse_request


class Gate(Echo):
    """Echo whose calls block while ``hold`` is cleared (only after warm-up)."""

    hold = threading.Event()


def model(tmp_path: Path, policy: GatePolicy | None = None, function_type: type[Echo] = Echo) -> FunctionModel:
    def resolve(_function: object, uri: str | None) -> Path | None:
        if uri and not Path(uri).exists():
            raise FileNotFoundError(uri)
        return Path(uri) if uri else None

    return FunctionModel(
        function_type(),
        PredictorMetrics(CollectorRegistry()),
        max_batch_size=8,
        max_delay_ms=0,
        max_queue=64,
        make_function=lambda _reload: function_type(),
        resolve=resolve,
        policy=policy or GatePolicy(latency_runs=3),
        golden=load_golden(package_dir("echo") / "golden.json"),
    )


def artifact(tmp_path: Path, name: str, **config: object) -> str:
    (tmp_path / name).mkdir()
    (tmp_path / name / "config.json").write_text(json.dumps({"version": name, **config}))
    return str(tmp_path / name)


def request(i: int) -> object:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [i, 1]}]}
    return parse_request(orjson.dumps(body), None, "echo")


async def started(m: FunctionModel) -> FunctionModel:
    await m.load_async(lambda: None)
    return m


async def settled(m: FunctionModel, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while m.lifecycle.busy:
            await asyncio.sleep(0.01)


def test_a_gated_candidate_is_promoted_and_new_requests_use_it(tmp_path):
    async def scenario():
        m = await started(model(tmp_path))
        before = await m.infer(request(1))
        m.lifecycle.load_candidate(CandidateSpec(model_uri=artifact(tmp_path, "v2")))
        await settled(m)
        candidate = m.lifecycle.candidate
        during = await m.infer(request(2))  # a gated candidate takes no traffic until told
        m.lifecycle.promote()
        after = await m.infer(request(3))
        await m.close()
        return before, candidate, during, after, m

    before, candidate, during, after, m = asyncio.run(scenario())
    assert (before.model_version, during.model_version, after.model_version) == ("1", "1", "v2")
    assert candidate.state == "active" and [g.name for g in candidate.gates] == [
        "load", "contract", "contract", "golden", "latency", "memory"
    ]  # fmt: skip
    assert all(g.passed and not g.skipped for g in candidate.gates)
    assert [r.event for r in m.lifecycle.history] == ["active", "loading", "loaded", "gated", "promoted"]
    assert m.stats.counts["1"].requests == 2 and m.stats.counts["v2"].requests == 1


def test_requests_in_flight_finish_on_the_version_that_started_them(tmp_path):
    async def scenario():
        Gate.hold.set()
        m = await started(model(tmp_path, function_type=Gate))
        m.lifecycle.load_candidate(CandidateSpec(model_uri=artifact(tmp_path, "v2")))
        await settled(m)
        old_slot = m.lifecycle.active
        Gate.hold.clear()

        def blocking_infer(inputs):
            Gate.hold.wait(10)
            return {"y": inputs["x"]}

        old_slot.batcher._run = blocking_infer  # the old version is mid-batch when the switch happens
        slow = asyncio.ensure_future(m.infer(request(7)))
        await asyncio.sleep(0.05)
        m.lifecycle.promote()
        fast = await m.infer(request(8))
        state_while_busy = old_slot.state
        Gate.hold.set()
        slow_response = await slow
        await asyncio.sleep(0.05)
        await m.close()
        return slow_response, fast, state_while_busy, old_slot

    slow, fast, state_while_busy, old_slot = asyncio.run(scenario())
    assert slow.model_version == "1" and fast.model_version == "v2"
    assert np.array_equal(slow.outputs[0].as_numpy(), [[7, 1]])
    assert state_while_busy == "retiring" and old_slot.state == "retired" and old_slot.released


@pytest.mark.parametrize(
    ("config", "spec", "policy", "gate", "says"),
    [
        ({"scale": 2.0}, {}, None, "golden", "differs"),
        ({"ballast_mb": 64}, {}, GatePolicy(latency_runs=3, memory_budget_mb=1.0), "memory", "budget 1"),
        ({"delay_ms": 30}, {}, GatePolicy(latency_runs=3, latency_factor=1.5), "latency", "median"),
    ],
    ids=["golden", "memory", "latency"],
)
def test_a_candidate_failing_a_gate_never_takes_traffic(tmp_path, config, spec, policy, gate, says):
    async def scenario():
        m = await started(model(tmp_path, policy))
        m.lifecycle.load_candidate(CandidateSpec(model_uri=artifact(tmp_path, "bad", **config), **spec))
        await settled(m)
        with pytest.raises(ConflictError, match="candidate is failed"):
            m.lifecycle.promote()
        with pytest.raises(ConflictError, match="no gated candidate"):
            m.lifecycle.set_canary(50)
        served = {(await m.infer(request(i))).model_version for i in range(5)}
        described = m.lifecycle.describe().model_dump(mode="json")
        await m.close()
        return served, described

    served, described = asyncio.run(scenario())
    assert served == {"1"}
    candidate = described["candidate"]
    failed = [g for g in candidate["gates"] if not g["passed"]]
    assert candidate["state"] == "failed" and [g["name"] for g in failed] == [gate]
    assert says in failed[0]["detail"] and gate in candidate["error"]
    assert described["history"][-1]["event"] == "rejected"


def test_skipping_a_gate_lets_a_changed_version_through(tmp_path):
    async def scenario():
        m = await started(model(tmp_path))
        spec = CandidateSpec(model_uri=artifact(tmp_path, "x2", scale=2.0), skip_gates=frozenset({"golden"}))
        m.lifecycle.load_candidate(spec)
        await settled(m)
        state = m.lifecycle.candidate.state
        gates = {g.name: g.skipped for g in m.lifecycle.candidate.gates}
        await m.close()
        return state, gates

    state, gates = asyncio.run(scenario())
    assert state == "ready" and gates["golden"] is True and gates["latency"] is False


class Wider(Echo):
    outputs = (TensorSpec("y", "FP32", (-1, -1)), TensorSpec("norm", "FP32", (-1,)))

    def infer(self, inputs):
        x = inputs["x"]
        return {"y": x, "norm": np.linalg.norm(x, axis=1).astype(np.float32)}


@pytest.mark.parametrize(("new_contract", "state"), [(False, "failed"), (True, "ready")])
def test_a_changed_contract_needs_to_be_declared(tmp_path, new_contract, state):
    async def scenario():
        m = await started(model(tmp_path))
        m.lifecycle.make_function = lambda _reload: Wider()
        m.lifecycle.load_candidate(CandidateSpec(new_contract=new_contract, skip_gates=frozenset({"golden"})))
        await settled(m)
        candidate = m.lifecycle.candidate
        await m.close()
        return candidate

    candidate = asyncio.run(scenario())
    assert candidate.state == state
    contract = [g for g in candidate.gates if g.name == "contract"]
    assert contract[0].skipped is new_contract
    if not new_contract:
        assert "outputs changed" in contract[-1].detail and "norm" in contract[-1].detail


def test_a_load_failure_is_a_failed_gate_and_a_second_load_waits_for_the_first(tmp_path):
    async def scenario():
        m = await started(model(tmp_path))
        m.lifecycle.load_candidate(CandidateSpec(model_uri=str(tmp_path / "missing"), version="v9"))
        with pytest.raises(ConflictError, match="still loading"):
            m.lifecycle.load_candidate(CandidateSpec(version="v10"))
        await settled(m)
        failed = m.lifecycle.candidate
        m.lifecycle.load_candidate(CandidateSpec(model_uri=artifact(tmp_path, "v3")))  # replaces the failed one
        await settled(m)
        ready = m.lifecycle.candidate
        m.lifecycle.abort()
        after_abort = m.lifecycle.candidate
        await m.close()
        return failed, ready, after_abort

    failed, ready, after_abort = asyncio.run(scenario())
    assert failed.state == "failed" and failed.version == "v9" and failed.gates[0].name == "load"
    assert not failed.gates[0].passed
    assert ready.version == "v3" and ready.state == "aborted" and after_abort is None


@pytest.mark.parametrize(("percent", "expected"), [(0, 0), (10, 10), (25, 25), (50, 50), (100, 100)])
def test_the_canary_share_is_exact(tmp_path, percent, expected):
    async def scenario():
        m = await started(model(tmp_path))
        m.lifecycle.load_candidate(CandidateSpec(model_uri=artifact(tmp_path, "v2")))
        await settled(m)
        m.lifecycle.set_canary(percent)
        versions = [(await m.infer(request(i))).model_version for i in range(100)]
        await m.close()
        return versions

    versions = asyncio.run(scenario())
    assert versions.count("v2") == expected and versions.count("1") == 100 - expected


def calls(n: int) -> int:
    def step(i: int) -> int:
        return i

    return sum(step(i) for i in range(n))


@pytest.mark.parametrize(
    ("busy_for_s", "min_waited_s", "max_slowdown"),
    [
        (0.0, 0.0, 3),  # never busy: only the short gaps left every slice
        (0.3, 0.25, None),  # busy for a while: the work waits about that long, then runs
        (600.0, 0.1, 30),  # busy for longer than any test: the work still finishes, at about a tenth of its speed
    ],
)
def test_background_work_steps_aside_while_the_active_version_is_busy(busy_for_s, min_waited_s, max_slowdown):
    from functions.hotswap.cooperative import StepAside

    def work() -> int:
        return sum(calls(100) for _ in range(800))

    started = time.perf_counter()
    expected = StepAside(lambda: False).run(work)
    alone_s = time.perf_counter() - started  # under the same profile hook, never pausing
    until = time.monotonic() + busy_for_s
    step_aside = StepAside(lambda: time.monotonic() < until, max_wait_s=0.05)
    started = time.perf_counter()
    assert step_aside.run(work) == expected
    elapsed = time.perf_counter() - started
    assert step_aside.waited_s >= min_waited_s
    if busy_for_s < 1:  # beyond the busy time, only the gaps left every 2 ms slice of work (sub-millisecond
        # sleeps, which overrun on a loaded machine: the bound says "gaps", not "nothing")
        assert step_aside.waited_s <= busy_for_s + 0.5 * elapsed
    if max_slowdown is not None:
        assert elapsed <= max_slowdown * alone_s + 0.2
    assert sys.getprofile() is None


def test_background_work_does_not_pause_while_it_holds_a_lock_the_serving_thread_needs():
    from functions.hotswap.cooperative import StepAside, holding_shared

    def inside() -> int:
        with holding_shared():
            return sum(calls(100) for _ in range(2000))

    held = StepAside(lambda: True, max_wait_s=0.05)
    assert held.run(inside) > 0
    assert held.waited_s <= 0.06  # one pause at most, before the section is entered
    free = StepAside(lambda: True, max_wait_s=0.05)
    free.run(lambda: sum(calls(100) for _ in range(2000)))
    assert free.waited_s >= 3 * 0.05  # the same work outside such a section pauses again and again
