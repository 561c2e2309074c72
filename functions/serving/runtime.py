"""The ``kserve.Model`` every function runs in: artifact loading, warm-up, batching, metrics.

A function only provides :class:`functions.contract.Function`; this class adapts it to KServe's model contract.
Model compute never runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kserve import Model
from kserve.model import InferenceVerb
from kserve.model_repository import ModelRepository
from kserve.protocol.infer_type import InferRequest, InferResponse

from core.errors import InvalidInputError, NotReadyError, UnknownModelError, WakeserveError
from core.ids import new_id
from functions.contract import Function, GenerativeFunction
from functions.hotswap.gates import GatePolicy, Golden
from functions.hotswap.lifecycle import Lifecycle, MakeFunction, Resolve
from functions.hotswap.slots import BatchingConfig, Slot, VersionStats
from functions.serving.batching import SYNC
from functions.serving.kserve_objects import read_infer_request, to_infer_response
from functions.serving.metrics import PredictorMetrics
from functions.serving.tensors import V2Request, V2Result, check_outputs, decode_inputs, select_outputs

if TYPE_CHECKING:
    from functions.generation.schema import GenerationRequest
    from functions.generation.streams import GenerationStream

log = logging.getLogger(__name__)
T = TypeVar("T")


class FunctionModel(Model):  # type: ignore[misc]
    """Serves one :class:`Function` over KServe's v2 data plane, with a second slot for hot swaps.

    ``lifecycle`` holds the active version and an optional candidate (see :mod:`functions.hotswap.lifecycle`); each
    request is bound to one of them when it arrives and reports that version in its response.
    """

    def __init__(
        self,
        function: Function,
        metrics: PredictorMetrics,
        *,
        max_batch_size: int,
        max_delay_ms: float,
        max_queue: int,
        make_function: MakeFunction | None = None,
        resolve: Resolve | None = None,
        policy: GatePolicy | None = None,
        golden: Golden | None = None,
        model_uri: str | None = None,
        version: str | None = None,
        version_suffix: str = "",
    ) -> None:
        super().__init__(function.name)
        self.metrics = metrics
        self.load_error: str | None = None
        self.ready_event = asyncio.Event()
        self.stats = VersionStats()
        self._initial_uri, self._initial_version, self._suffix = model_uri, version, version_suffix
        self.lifecycle = Lifecycle(
            function.name,
            make_function or (lambda _reload: type(function)()),
            resolve or (lambda _function, _uri: None),
            BatchingConfig(max_batch_size, max_delay_ms, max_queue),
            policy or GatePolicy(),
            golden,
            observe_batch=metrics.batch_size.labels(function.name).observe,
        )
        self._first = self.lifecycle.new_slot(function, "active", model_uri or "packaged")
        metrics.queue_depth.labels(function.name).set_function(self._depth)
        metrics.ready.labels(function.name).set_function(lambda: 1.0 if self.ready else 0.0)

    def _depth(self) -> float:
        slots = (self.lifecycle.active or self._first, self.lifecycle.candidate)
        return float(sum(s.batcher.depth for s in slots if s is not None))

    @property
    def function(self) -> Function:
        """The active version's function (the first one until it is loaded)."""
        return (self.lifecycle.active or self._first).function

    @property
    def version(self) -> str:
        return (self.lifecycle.active or self._first).version

    async def load_async(
        self, resolve_artifacts: Callable[[], Path | None], on_phase: Callable[[str], object] = lambda _: None
    ) -> None:
        """Fetch artifacts, load and warm up off the loop; only then report ready.

        ``on_phase`` is told when each step is done: ``artifacts``, ``load``, ``warmup``.
        """
        loop = asyncio.get_running_loop()
        slot = self._first
        started = time.monotonic()
        artifacts = await loop.run_in_executor(slot.executor, resolve_artifacts)
        on_phase("artifacts")
        await loop.run_in_executor(slot.executor, slot.function.load, artifacts)
        on_phase("load")
        await loop.run_in_executor(slot.executor, slot.function.infer, slot.function.warmup_inputs())
        on_phase("warmup")
        slot.version = (self._initial_version or slot.function.version) + self._suffix
        slot.load_s = round(time.monotonic() - started, 3)
        self.lifecycle.install_active(slot, self._initial_uri)
        self.ready = True
        self.ready_event.set()
        log.info("model %s version %s ready in %.2fs", self.name, self.version, time.monotonic() - started)

    def load(self) -> bool:
        # Loading is asynchronous (load_async); KServe must never load synchronously on the event loop.
        return self.ready

    def get_input_types(self) -> list[dict[str, Any]]:
        return [s.to_metadata() for s in self.function.inputs]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [s.to_metadata() for s in self.function.outputs]

    async def __call__(
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> tuple[InferResponse, dict[str, str]]:
        return await self.infer(body), {}

    async def infer(self, request: Any, priority: int = SYNC) -> Any:
        """KServe's model contract: an ``InferRequest`` is answered with an ``InferResponse``; a
        :class:`V2Request` with a :class:`V2Result`."""
        if isinstance(request, V2Request):
            return await self.run(request, priority)
        if not isinstance(request, InferRequest):
            raise InvalidInputError("expected a v2 inference request with an 'inputs' list")
        return to_infer_response(request, await self.run(read_infer_request(request), priority))

    async def run(self, request: V2Request, priority: int = SYNC) -> V2Result:
        """Every transport (REST, gRPC, events, in process) comes here with its request read."""
        return await self._serve(lambda slot: self._run(slot, request, priority))

    async def _serve(self, work: Callable[[Slot], Awaitable[T]]) -> T:
        """Every path (REST, gRPC, events) comes here: bound to a slot, counted by outcome and version, timed."""
        started = time.perf_counter()
        outcome, version, server_error = "ok", self.version, False
        try:
            if not self.ready:
                raise NotReadyError(f"model {self.name} is still loading")
            with self.lifecycle.pick().bound() as slot:
                version = slot.version
                return await work(slot)
        except WakeserveError as exc:
            outcome, server_error = exc.code, exc.status >= 500
            raise
        except Exception:
            outcome, server_error = "model_error", True
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(self.name, outcome, version, elapsed)
            if outcome != "not_ready":
                self.stats.record(version, elapsed, not server_error)

    async def _run(self, slot: Slot, request: V2Request, priority: int) -> V2Result:
        """Decode and validate, queue for the slot's next batch, select the outputs (always with an id)."""
        function = slot.function
        inputs = decode_inputs(request.inputs, function.inputs)
        function.check(inputs)
        check_outputs(request.outputs, function.outputs)
        outputs = await slot.batcher.submit(inputs, priority)
        selected = select_outputs(request.outputs, outputs, function.outputs)
        return V2Result(request.id or new_id(), self.name, slot.version, selected)

    @property
    def generative(self) -> bool:
        return isinstance(self.function, GenerativeFunction)

    @contextlib.asynccontextmanager
    async def generation(self, request: GenerationRequest) -> AsyncIterator[GenerationStream]:
        """Queue ``request`` on the engine of the version it is bound to; its stream stays bound (and counted)
        until the caller is done with it. Errors before the stream starts are raised here."""
        started, outcome, version = time.perf_counter(), "ok", self.version
        try:
            if not self.ready:
                raise NotReadyError(f"model {self.name} is still loading")
            with self.lifecycle.pick().bound() as slot:
                version = slot.version
                function = slot.function
                if not isinstance(function, GenerativeFunction):
                    raise UnknownModelError(f"model {self.name} does not generate text")
                stream = await function.require_engine().open(request)
                try:
                    yield stream
                finally:
                    if not stream.finished:
                        outcome = "cancelled"
                        stream.cancel()
        except WakeserveError as exc:
            outcome = exc.code
            raise
        finally:
            self.metrics.observe_request(self.name, outcome, version, time.perf_counter() - started)

    async def close(self) -> None:
        self.ready = False
        if self.lifecycle.active is None:
            await self._first.release(0)
        await self.lifecycle.close()


def served_model(registry: ModelRepository, name: str) -> FunctionModel:
    """The model ``name`` as every transport looks it up; one still loading answers 503 when called."""
    model = registry.get_model(name)
    if not isinstance(model, FunctionModel):
        raise UnknownModelError(f"Model with name {name} does not exist.")
    return model
