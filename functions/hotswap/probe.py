"""Synthetic traffic for a canary that real traffic does not reach: the function's golden inputs, sent to the
active version and the gated candidate in turn.

The two versions are compared on the same inputs, one call after the other through each slot's own batcher
(so queueing is counted as for a real request), alternating which one goes first so that neither always
follows the other. The calls are not user traffic: they are answered to the caller only, never counted in the
replica's per-version statistics or its request metrics.
"""

from __future__ import annotations

import time

from core.errors import ConflictError, WakeserveError
from functions.contract import Tensors
from functions.hotswap.documents import ProbeDocument, ProbeSample, SlotState
from functions.hotswap.lifecycle import Lifecycle
from functions.hotswap.slots import Slot
from functions.serving.batching import SYNC


def probe_inputs(lifecycle: Lifecycle, slot: Slot) -> list[Tensors]:
    """The golden inputs shipped with the function, or its warm-up inputs when it ships none."""
    if lifecycle.golden is not None and lifecycle.golden.cases:
        return [case.inputs for case in lifecycle.golden.cases]
    return [slot.function.warmup_inputs()]


async def probe(lifecycle: Lifecycle, rounds: int) -> ProbeDocument:
    """``rounds`` calls on each of the active and the candidate slot, interleaved; 409 without a gated
    candidate. When the golden inputs do not fit the candidate (a new contract) no call is made and the answer
    says why, since no later probe of that candidate can succeed either."""
    active, candidate = lifecycle.active, lifecycle.candidate
    if active is None or candidate is None or candidate.state is not SlotState.READY:
        raise ConflictError(f"model {lifecycle.name} has no gated candidate to probe")
    if tuple(candidate.function.inputs) != tuple(active.function.inputs):
        return ProbeDocument(samples=[], refused=f"version {candidate.version} declares new inputs")
    cases = probe_inputs(lifecycle, active)
    for slot in (active, candidate):
        try:
            for inputs in cases:
                slot.function.check(inputs)
        except WakeserveError as exc:
            return ProbeDocument(samples=[], refused=f"the golden inputs do not fit version {slot.version}: {exc}")
    samples: list[ProbeSample] = []
    for i in range(rounds):
        inputs = cases[i % len(cases)]
        for slot in (active, candidate) if i % 2 == 0 else (candidate, active):
            if lifecycle.candidate is not candidate or lifecycle.active is not active:
                return ProbeDocument(samples=samples)  # promoted or aborted meanwhile: the comparison is over
            samples.append(await _call(slot, inputs))
    return ProbeDocument(samples=samples)


async def _call(slot: Slot, inputs: Tensors) -> ProbeSample:
    started = time.perf_counter()
    ok = True
    with slot.bound():
        try:
            await slot.batcher.submit(inputs, SYNC)
        except WakeserveError as exc:
            ok = exc.status < 500
        except Exception:  # noqa: BLE001 - a failing model call is exactly what the probe measures
            ok = False
    return ProbeSample(version=slot.version, latency_s=round(time.perf_counter() - started, 6), ok=ok)
