"""Hot swap in one replica: load a candidate version beside the active one, gate it, promote or abort.

The candidate is built and loaded on a thread of its own that steps aside while the active version serves;
gates that measure it (golden outputs, latency) run on the candidate's own compute thread. A failed gate
leaves the active version serving and keeps the verdicts for the control API. A load that is aborted is
stopped at its next Python call, and no other candidate loads until its thread has ended, so two loads never
share the replica's memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConflictError
from functions.contract import Function
from functions.hotswap.candidate import CandidateSpec
from functions.hotswap.cooperative import StepAside, collector_paused, loading_quietly
from functions.hotswap.documents import SlotsDocument, SlotState, SwapDocument
from functions.hotswap.gates import GatePolicy, GateResult, Golden
from functions.hotswap.gating import Gating, rss_mb, serving
from functions.hotswap.slots import BatchingConfig, CanarySplit, Slot
from functions.serving import artifact_checks

log = logging.getLogger(__name__)

MakeFunction = Callable[[bool], Function]  # reload_source -> a fresh, unloaded function
Resolve = Callable[[Function, str | None], Path | None]  # (function, model_uri) -> artifacts; blocking
ReleaseArtifacts = Callable[[Function], object]  # blocking: the function's artifacts are no longer needed


def _keep_artifacts(_function: Function) -> None:
    return None


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
    release_artifacts: ReleaseArtifacts = _keep_artifacts
    active: Slot | None = None
    candidate: Slot | None = None
    canary: CanarySplit = field(default_factory=CanarySplit)
    history: list[SwapRecord] = field(default_factory=list)
    _loading: asyncio.Task[None] | None = None
    _load_thread: Future[None] | None = None
    _releases: set[asyncio.Task[None]] = field(default_factory=set)
    _base_uri: str | None = None
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

    # -- candidates ------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A candidate is loading or being gated, or an aborted load has not yet stopped."""
        if self._loading is not None and not self._loading.done():
            return True
        return self._load_thread is not None and not self._load_thread.done()

    def load_candidate(self, spec: CandidateSpec) -> Slot:
        """Start loading ``spec`` in the background; 409 while another candidate is loading."""
        if self.active is None or self.active.state is not SlotState.ACTIVE:
            raise ConflictError(f"model {self.name} has no active version yet")
        if self._loading is not None and not self._loading.done():
            raise ConflictError(f"a candidate of {self.name} is still loading; abort it or wait")
        if self.busy:
            raise ConflictError(f"an aborted candidate of {self.name} is still stopping its load; retry shortly")
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
        before = rss_mb()
        started = time.monotonic()
        self._note("loading", slot.version, uri or "packaged")
        function = slot.function

        def load() -> None:
            path = self.resolve(function, uri)
            slot.digest = artifact_checks.digest(path)
            function.load(path)

        step_aside = StepAside(self._active_busy)
        loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-loader")
        # Cancelling the task cannot end the thread: the future says when it has, and until then the replica
        # stays busy, so a second load never runs beside this one.
        self._load_thread = slot.load_thread = loader.submit(loading_quietly(step_aside, load))
        loader.shutdown(wait=False)
        try:
            with collector_paused():
                await asyncio.wrap_future(slot.load_thread)
            loaded_s = time.monotonic() - started
            # Warm-up on the thread that will serve: a thread's first torch calls set up its own state.
            await self._gating().call(slot, function.warmup_inputs())
            slot.load_s = round(time.monotonic() - started, 3)
            slot.version = (spec.version or function.version) + spec.version_suffix
            detail = f"loaded in {loaded_s:.2f}s, warmed up in {slot.load_s - loaded_s:.2f}s"
            slot.gates.append(GateResult("load", True, detail))
            self._note("loaded", slot.version, f"{detail}; digest {slot.digest}")
            slot.state = SlotState.GATING
            slot.gates.extend(await self._gating().run(slot, spec, before))
            failed = [g for g in slot.gates if not g.passed]
            if failed:
                slot.state, slot.error = SlotState.FAILED, "; ".join(f"{g.name}: {g.detail}" for g in failed)
        except asyncio.CancelledError:
            step_aside.stop()
            slot.state, slot.error = SlotState.ABORTED, "aborted while loading"
            raise
        except Exception as exc:  # noqa: BLE001 - any load failure is a failed gate
            slot.gates.append(GateResult("load", False, f"{type(exc).__name__}: {exc}"))
            slot.state, slot.error = SlotState.FAILED, f"load: {exc}"
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

    def _gating(self) -> Gating:
        assert self.active is not None
        return Gating(self.active, self.policy, self.golden)

    def _active_busy(self) -> bool:
        return self.active is not None and serving(self.active)

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
        task = asyncio.get_running_loop().create_task(self._retire(slot))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _retire(self, slot: Slot) -> None:
        """Free the slot once its requests are done, then its artifacts once its load thread has ended too."""
        function = slot.function
        await slot.release(self.release_timeout_s)
        await _ended(slot.load_thread)
        try:
            await asyncio.to_thread(self.release_artifacts, function)
        except Exception:  # a cache left untidy must not stop the swap
            log.warning("%s: releasing the artifacts of %s failed", self.name, slot.version, exc_info=True)

    def _note(self, event: str, version: str, detail: str) -> None:
        self.history.append(SwapRecord(time.time(), event, version, detail))
        del self.history[:-50]

    async def close(self) -> None:
        if self._loading is not None:
            self._loading.cancel()
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


async def _ended(thread: Future[None] | None) -> None:
    """Until a load thread has ended, however it ended (its outcome was reported by the load itself)."""
    if thread is None or thread.done():
        return
    (waited,), _ = await asyncio.wait([asyncio.wrap_future(thread)])
    if not waited.cancelled():
        waited.exception()
