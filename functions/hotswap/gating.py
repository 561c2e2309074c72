"""Running a candidate's gates beside the active version: its calls on its own thread, stepping aside while the
active version serves, and the latency of both versions measured now, under the same conditions.

The verdicts themselves are pure functions of the measured values (:mod:`functions.hotswap.gates`).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from functions.contract import Function, Tensors
from functions.hotswap.candidate import CandidateSpec
from functions.hotswap.cooperative import StepAside
from functions.hotswap.gates import (
    GatePolicy,
    GateResult,
    Golden,
    contract_gate,
    golden_gate,
    latency_gate,
    memory_gate,
    skipped,
)
from functions.hotswap.slots import Slot

GAP_PATIENCE_S = 0.1  # how long a pair of latency runs waits for the active version to be idle


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def serving(slot: Slot) -> bool:
    """The slot has a request in flight or a batch on its model."""
    return slot.inflight > 0 or slot.batcher.running


@dataclass(frozen=True)
class Gating:
    """The gates of one candidate against ``active``, the version serving while it is judged."""

    active: Slot
    policy: GatePolicy
    golden: Golden | None

    def _busy(self) -> bool:
        return serving(self.active)

    async def run(self, slot: Slot, spec: CandidateSpec, rss_before: float) -> list[GateResult]:
        """Every gate's verdict in order (contract, golden, latency, memory), skipped ones included."""
        active, candidate = self.active.function, slot.function
        skip = spec.skipping
        results: list[GateResult] = []
        if "contract" in skip:
            results.append(skipped("contract", "a new contract was declared" if spec.new_contract else "skipped"))
        else:
            results.append(contract_gate(active.inputs, candidate.inputs, "inputs"))
            if results[-1].passed:
                results.append(contract_gate(active.outputs, candidate.outputs, "outputs"))
        if "golden" in skip:
            results.append(skipped("golden", "skipped on request"))
        elif self.golden is not None:
            outputs = [await self.call(slot, case.inputs) for case in self.golden.cases]
            results.append(golden_gate(self.golden, outputs))
        else:
            results.append(golden_gate(None, []))
        if "latency" in skip:
            results.append(skipped("latency", "skipped on request"))
        else:
            results.append(await self.latency(slot))
        after = rss_mb()
        slot.memory_mb = round(after - rss_before, 1)
        if "memory" in skip:
            results.append(skipped("memory", "skipped on request"))
        else:
            results.append(memory_gate(after, after - rss_before, self.policy))
        return results

    async def call(self, slot: Slot, inputs: Tensors) -> Tensors:
        """A candidate's call on its own thread, stepping aside while the active version serves."""
        step_aside = StepAside(self._busy)
        return await asyncio.get_running_loop().run_in_executor(
            slot.executor, step_aside.run, lambda: slot.function.infer(inputs)
        )

    async def latency(self, slot: Slot) -> GateResult:
        """Both versions timed now, under the same conditions: interleaved runs on the candidate's thread,
        each under the same step-aside hook (its pauses for the active version's requests not counted),
        alternating which version goes first. A baseline taken at another time (idle, or under other traffic)
        would judge the candidate on the load of the moment instead of on itself.
        """
        active, candidate = self.active.function, slot.function
        inputs = self.golden.cases[0].inputs if self.golden else candidate.warmup_inputs()
        await self._timed(slot, active, inputs)  # the active version's first call on this thread is not counted
        active_s: list[float] = []
        candidate_s: list[float] = []
        for i in range(self.policy.latency_runs):
            # Started in a gap between the active version's batches when one comes soon; under saturation none
            # does, and the short patience keeps the swap's duration bounded.
            await self.active.batcher.wait_idle(GAP_PATIENCE_S)
            runs = [(active, active_s), (candidate, candidate_s)]
            for function, samples in runs if i % 2 == 0 else runs[::-1]:
                samples.append(await self._timed(slot, function, inputs))
        return latency_gate(active_s, candidate_s, self.policy)

    async def _timed(self, slot: Slot, function: Function, inputs: Tensors) -> float:
        """Seconds one call of ``function`` takes on ``slot``'s thread, not counting its pauses for the active
        version. The active function may be called there: a function serves concurrent callers (the parts its
        versions share, such as a tokenizer, are locked)."""
        step_aside = StepAside(self._busy)

        def timed() -> float:
            started = time.perf_counter()
            step_aside.run(lambda: function.infer(inputs))
            return time.perf_counter() - started - step_aside.waited_s

        return await asyncio.get_running_loop().run_in_executor(slot.executor, timed)
