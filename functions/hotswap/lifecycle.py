"""Hot swap in one replica: load a candidate version beside the active one, gate it, promote or abort.

The candidate is built and loaded on a low-priority thread so the active version keeps the CPU it needs;
gates that measure it (golden outputs, latency) run on the candidate's own compute thread at normal
priority. A failed gate leaves the active version serving and keeps the verdicts for the control API.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConflictError
from functions.contract import Function, Tensors
from functions.hotswap.candidate import CandidateSpec
from functions.hotswap.cooperative import StepAside, collector_paused, loading_quietly
from functions.hotswap.documents import SlotsDocument, SlotState, SwapDocument
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
from functions.hotswap.slots import BatchingConfig, CanarySplit, Slot
from functions.serving import artifact_checks

log = logging.getLogger(__name__)

MakeFunction = Callable[[bool], Function]  # reload_source -> a fresh, unloaded function
Resolve = Callable[[Function, str | None], Path | None]  # (function, model_uri) -> artifacts; blocking


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class SwapRecord:
    at: float
    event: str
    version: str
    detail: str = ""


@dataclass
class Lifecycle:
    """The active slot, at most one candidate, the canary split and the history of swaps."""

    name: str
    make_function: MakeFunction
    resolve: Resolve
    batching: BatchingConfig
    policy: GatePolicy
    golden: Golden | None
    observe_batch: Callable[[int], None] | None = None
    release_timeout_s: float = 60.0
    active: Slot | None = None
    candidate: Slot | None = None
    canary: CanarySplit = field(default_factory=CanarySplit)
    history: list[SwapRecord] = field(default_factory=list)
    _loading: asyncio.Task[None] | None = None
    _releases: set[asyncio.Task[None]] = field(default_factory=set)
    _base_uri: str | None = None
    _baseline_task: asyncio.Task[None] | None = None
    first_digest: str | None = None  # of the artifacts the first version was resolved from

    def resolve_first(self, function: Function, model_uri: str | None) -> Path | None:
        """Blocking: the first version's artifacts, noting their digest for :meth:`install_active`."""
        path = self.resolve(function, model_uri)
        self.first_digest = artifact_checks.digest(path)
        return path

    # -- routing ---------------------------------------------------------------------------------------------
    def pick(self) -> Slot:
        assert self.active is not None, "no active slot"
        candidate = self.candidate
        if candidate is not None and candidate.state is SlotState.READY and self.canary.take():
            return candidate
        return self.active

    # -- the first version -----------------------------------------------------------------------------------
    def new_slot(self, function: Function, role: str, source: str) -> Slot:
        return Slot(function, self.batching, role=role, source=source, observe_batch=self.observe_batch)

    def install_active(self, slot: Slot, model_uri: str | None) -> None:
        slot.state = SlotState.ACTIVE
        if slot.digest is None:
            slot.digest = self.first_digest
        self.active, self._base_uri = slot, model_uri
        self._note("active", slot.version, slot.source)
        self._baseline_task = asyncio.get_running_loop().create_task(self._measure_baseline(slot))

    async def _measure_baseline(self, slot: Slot, delay_s: float = 1.0, runs: int = 3) -> None:
        """The first version's latency on the golden inputs, for the latency gate of a later candidate:
        measured once, soon after it is ready, in gaps between batches, so no swap has to measure it."""
        await asyncio.sleep(delay_s)
        inputs = self.golden.cases[0].inputs if self.golden else slot.function.warmup_inputs()
        samples = []
        for _ in range(runs):
            await self._idle_gap(slot, patience_s=5.0)
            if slot.baseline_s is not None or slot is not self.active:
                return
            samples.append(await self._timed(slot, inputs))
        if slot.baseline_s is None:
            slot.baseline_s = statistics.median(samples)

    # -- candidates ------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._loading is not None and not self._loading.done()

    def load_candidate(self, spec: CandidateSpec) -> Slot:
        """Start loading ``spec`` in the background; 409 while another candidate is loading."""
        if self.active is None or self.active.state is not SlotState.ACTIVE:
            raise ConflictError(f"model {self.name} has no active version yet")
        if self.busy:
            raise ConflictError(f"a candidate of {self.name} is still loading; abort it or wait")
        self._drop_candidate("replaced by a new candidate")
        uri = spec.model_uri if spec.model_uri is not None else self._base_uri
        function = self.make_function(spec.reload_source)
        slot = self.new_slot(function, "candidate", uri or "packaged")
        if spec.version:
            slot.version = spec.version + spec.version_suffix
        self.candidate = slot
        self._loading = asyncio.get_running_loop().create_task(self._load(slot, spec, uri))
        return slot

    async def _load(self, slot: Slot, spec: CandidateSpec, uri: str | None) -> None:
        loop = asyncio.get_running_loop()
        loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-loader")
        before = rss_mb()
        started = time.monotonic()
        self._note("loading", slot.version, uri or "packaged")
        try:
            function = slot.function

            def load() -> None:
                path = self.resolve(function, uri)
                slot.digest = artifact_checks.digest(path)
                function.load(path)

            with collector_paused():
                await loop.run_in_executor(loader, loading_quietly(StepAside(self._active_busy), load))
            loaded_s = time.monotonic() - started
            # Warm-up on the thread that will serve: a thread's first torch calls set up its own state.
            await self._run(slot, function.warmup_inputs())
            slot.load_s = round(time.monotonic() - started, 3)
            slot.version = (spec.version or function.version) + spec.version_suffix
            detail = f"loaded in {loaded_s:.2f}s, warmed up in {slot.load_s - loaded_s:.2f}s"
            slot.gates.append(GateResult("load", True, detail))
            self._note("loaded", slot.version, f"{detail}; digest {slot.digest}")
            slot.state = SlotState.GATING
            await self._gate(slot, spec, before)
        except asyncio.CancelledError:
            slot.state, slot.error = SlotState.ABORTED, "aborted while loading"
            raise
        except Exception as exc:  # noqa: BLE001 - any load failure is a failed gate
            slot.gates.append(GateResult("load", False, f"{type(exc).__name__}: {exc}"))
            slot.state, slot.error = SlotState.FAILED, f"load: {exc}"
        finally:
            loader.shutdown(wait=False)
        if slot is not self.candidate:  # aborted or replaced meanwhile
            return
        if slot.state is SlotState.FAILED:
            log.warning("candidate %s of %s failed its gates: %s", slot.version, self.name, slot.error)
            self._note("rejected", slot.version, slot.error or "")
            self._release(slot)
            return
        slot.state = SlotState.READY
        self._note("gated", slot.version, "; ".join(g.detail for g in slot.gates if not g.skipped))
        log.info("candidate %s (digest %s) of %s passed its gates", slot.version, slot.digest, self.name)
        if spec.promote:
            self.promote()

    async def _gate(self, slot: Slot, spec: CandidateSpec, rss_before: float) -> None:
        assert self.active is not None
        active, candidate = self.active.function, slot.function
        skip = spec.skip_gates | ({"contract"} if spec.new_contract else frozenset())
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
            outputs = [await self._run(slot, case.inputs) for case in self.golden.cases]
            results.append(golden_gate(self.golden, outputs))
        else:
            results.append(golden_gate(None, []))
        if "latency" in skip:
            results.append(skipped("latency", "skipped on request"))
        else:
            results.append(await self._latency(slot))
        after = rss_mb()
        slot.memory_mb = round(after - rss_before, 1)
        if "memory" in skip:
            results.append(skipped("memory", "skipped on request"))
        else:
            results.append(memory_gate(after, after - rss_before, self.policy))
        slot.gates.extend(results)
        failed = [g for g in results if not g.passed]
        if failed:
            slot.state, slot.error = SlotState.FAILED, "; ".join(f"{g.name}: {g.detail}" for g in failed)

    def _active_busy(self) -> bool:
        active = self.active
        return active is not None and (active.inflight > 0 or active.batcher.running)

    async def _run(self, slot: Slot, inputs: Tensors) -> Tensors:
        """A candidate's call on its own thread, stepping aside while the active version serves."""
        step_aside = StepAside(self._active_busy)
        return await asyncio.get_running_loop().run_in_executor(
            slot.executor, step_aside.run, lambda: slot.function.infer(inputs)
        )

    async def _latency(self, slot: Slot) -> GateResult:
        """The candidate's latency against the active version's baseline, each run in a gap between the
        active version's requests; a run pauses while a request is served and the pauses are not counted.

        A version's baseline is the median of its own gate runs; the first version, never gated, is measured
        once, a few runs in the gaps between its batches, so that serving hardly notices.
        """
        assert self.active is not None
        active = self.active
        inputs = self.golden.cases[0].inputs if self.golden else slot.function.warmup_inputs()
        if active.baseline_s is None:
            samples = []
            for _ in range(min(5, self.policy.latency_runs)):
                await self._idle_gap(active)
                samples.append(await self._timed(active, inputs))
            active.baseline_s = statistics.median(samples)
        candidate_s = []
        for _ in range(self.policy.latency_runs):
            await self._idle_gap(active)
            candidate_s.append(await self._timed(slot, inputs))
        slot.baseline_s = statistics.median(candidate_s)
        return latency_gate([active.baseline_s], candidate_s, self.policy)

    async def _timed(self, slot: Slot, inputs: Tensors) -> float:
        """Seconds one call takes, not counting the pauses a candidate makes for the active version. The
        active version and candidates are timed under the same profile hook, so its cost cancels out."""
        step_aside = StepAside(self._active_busy if slot is not self.active else lambda: False)

        def timed() -> float:
            started = time.perf_counter()
            step_aside.run(lambda: slot.function.infer(inputs))
            return time.perf_counter() - started - step_aside.waited_s

        return await asyncio.get_running_loop().run_in_executor(slot.executor, timed)

    @staticmethod
    async def _idle_gap(slot: Slot, patience_s: float = 1.0) -> None:
        await slot.batcher.wait_idle(patience_s)

    # -- switching -------------------------------------------------------------------------------------------
    def set_canary(self, percent: float) -> None:
        if percent > 0 and (self.candidate is None or self.candidate.state is not SlotState.READY):
            raise ConflictError(f"model {self.name} has no gated candidate to send traffic to")
        self.canary.set(percent)

    def promote(self) -> Slot:
        """New requests go to the candidate from now on; the old version finishes what it has, then is freed."""
        candidate, old = self.candidate, self.active
        if candidate is None or candidate.state is not SlotState.READY:
            state = "no candidate" if candidate is None else f"the candidate is {candidate.state}"
            raise ConflictError(f"cannot promote {self.name}: {state}")
        assert old is not None
        candidate.state, old.state = SlotState.ACTIVE, SlotState.RETIRING
        self.active, self.candidate = candidate, None
        self.canary.set(0.0)
        if candidate.source != "packaged":
            self._base_uri = candidate.source
        self._note("promoted", candidate.version, f"replaced {old.version}")
        log.info(
            "%s: version %s (digest %s) is active (was %s)", self.name, candidate.version, candidate.digest, old.version
        )
        self._release(old)
        return candidate

    def abort(self, reason: str = "aborted") -> Slot | None:
        slot = self.candidate
        if slot is None:
            return None
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        self._drop_candidate(reason)
        return slot

    def _drop_candidate(self, reason: str) -> None:
        slot, self.candidate = self.candidate, None
        self.canary.set(0.0)
        if slot is None:
            return
        # A failed candidate was released when it failed and its verdict is what the control API shows.
        if slot.state is not SlotState.FAILED:
            slot.state = SlotState.ABORTED
            self._note("aborted", slot.version, reason)
        self._release(slot)

    def _release(self, slot: Slot) -> None:
        if len(self._releases) > 8:
            log.warning("%s: %d slots still releasing", self.name, len(self._releases))
        task = asyncio.get_running_loop().create_task(slot.release(self.release_timeout_s))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    def _note(self, event: str, version: str, detail: str) -> None:
        self.history.append(SwapRecord(time.time(), event, version, detail))
        del self.history[:-50]

    async def close(self) -> None:
        for task in (self._loading, self._baseline_task):
            if task is not None:
                task.cancel()
        for slot in (self.candidate, self.active):
            if slot is not None:
                await slot.release(0)
        await asyncio.gather(*self._releases, return_exceptions=True)

    def describe(self) -> SlotsDocument:
        return SlotsDocument(
            model=self.name,
            active=self.active.describe() if self.active else None,
            candidate=self.candidate.describe() if self.candidate else None,
            canary_percent=self.canary.percent,
            history=[SwapDocument.model_validate(vars(r)) for r in self.history[-20:]],
        )
