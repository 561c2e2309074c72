"""The latency gate times the active version and the candidate now, under the same conditions: a slowdown that
hits both (a busy machine) passes a good candidate, a candidate slower than the active version still fails."""

from __future__ import annotations

import asyncio
import time

import pytest

from functions.contract import Tensors
from functions.echo.function import Echo
from functions.hotswap.candidate import CandidateSpec
from functions.hotswap.gates import GatePolicy
from tests.functions.hotswap.test_lifecycle import artifact, model, settled, started


class Contended(Echo):
    """Echo on a machine whose every call costs ``machine_s`` more while it is busy, whichever version runs."""

    machine_s = 0.0

    def infer(self, inputs: Tensors) -> Tensors:
        time.sleep(type(self).machine_s)
        return super().infer(inputs)


@pytest.mark.parametrize(
    ("config", "state", "gate_passed"),
    [({}, "ready", True), ({"delay_ms": 40}, "failed", False)],
    ids=["as-fast", "slower"],
)
def test_a_candidate_is_judged_against_the_active_version_under_todays_conditions(tmp_path, config, state, gate_passed):
    async def scenario():
        Contended.machine_s = 0.0
        m = await started(model(tmp_path, GatePolicy(latency_runs=5), function_type=Contended))
        # A first swap on an idle machine: the version it promotes was timed at well under a millisecond.
        m.lifecycle.load_candidate(CandidateSpec(model_uri=artifact(tmp_path, "idle"), promote=True))
        await settled(m)
        promoted = m.lifecycle.active.version
        Contended.machine_s = 0.03  # now the machine is busy: every call of either version takes 30 ms more
        try:
            m.lifecycle.load_candidate(CandidateSpec(model_uri=artifact(tmp_path, "busy", **config)))
            await settled(m, timeout=30)
        finally:
            Contended.machine_s = 0.0
        candidate = m.lifecycle.candidate
        await m.close()
        return promoted, candidate

    promoted, candidate = asyncio.run(scenario())
    assert promoted == "idle"
    latency = next(g for g in candidate.gates if g.name == "latency")
    assert candidate.state == state and latency.passed is gate_passed, latency.detail
    active_ms = float(latency.detail.split("vs active ")[1].split(" ms")[0])
    assert active_ms >= 30  # the active version was timed under the same load, not taken from the idle swap
