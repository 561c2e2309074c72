"""The ``kserve.Model`` every function runs in: artifact loading, warm-up, batching, metrics.

A function only provides :class:`functions.spec.Function`; this class adapts it to KServe's model contract.
Model compute never runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kserve import Model
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferRequest, InferResponse

from events.errors import InvalidInputError, NotReadyError, WakeserveError
from functions.batching import SYNC, DynamicBatcher
from functions.metrics import PredictorMetrics
from functions.spec import Function
from functions.tensors import decode_request, encode_response

log = logging.getLogger(__name__)


class FunctionModel(Model):  # type: ignore[misc]
    """Serves one :class:`Function` over KServe's v2 data plane."""

    def __init__(
        self,
        function: Function,
        metrics: PredictorMetrics,
        *,
        max_batch_size: int,
        max_delay_ms: float,
        max_queue: int,
    ) -> None:
        super().__init__(function.name)
        self.function = function
        self.metrics = metrics
        self.load_error: str | None = None
        self.ready_event = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{function.name}-compute")
        self.batcher = DynamicBatcher(
            function.infer,
            self._executor,
            max_batch_size=max_batch_size,
            max_delay_ms=max_delay_ms,
            max_queue=max_queue,
            observe_batch=metrics.batch_size.labels(function.name).observe,
        )
        metrics.queue_depth.labels(function.name).set_function(lambda: self.batcher.depth)
        metrics.ready.labels(function.name).set_function(lambda: 1.0 if self.ready else 0.0)

    @property
    def version(self) -> str:
        return self.function.version

    async def load_async(
        self, resolve_artifacts: Callable[[], Path | None], on_phase: Callable[[str], object] = lambda _: None
    ) -> None:
        """Fetch artifacts, load and warm up off the loop; only then report ready.

        ``on_phase`` is told when each step is done: ``artifacts``, ``load``, ``warmup``.
        """
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        artifacts = await loop.run_in_executor(self._executor, resolve_artifacts)
        on_phase("artifacts")
        await loop.run_in_executor(self._executor, self.function.load, artifacts)
        on_phase("load")
        await loop.run_in_executor(self._executor, self.function.infer, self.function.warmup_inputs())
        on_phase("warmup")
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

    async def infer(self, request: Any, priority: int = SYNC) -> InferResponse:
        """Every path (REST, gRPC, events) comes here: counted by outcome and timed."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self._infer(request, priority)
        except WakeserveError as exc:
            outcome = exc.code
            raise
        except Exception:
            outcome = "model_error"
            raise
        finally:
            self.metrics.requests.labels(self.name, outcome).inc()
            self.metrics.latency.labels(self.name).observe(time.perf_counter() - started)

    async def _infer(self, request: Any, priority: int) -> InferResponse:
        """Validate, queue for the next batch, and encode the v2 response (always with an id)."""
        if not self.ready:
            raise NotReadyError(f"model {self.name} is still loading")
        if not isinstance(request, InferRequest):
            raise InvalidInputError("expected a v2 inference request with an 'inputs' list")
        inputs = decode_request(request, self.function.inputs)
        self.function.check(inputs)
        outputs = await self.batcher.submit(inputs, priority)
        return encode_response(
            request,
            outputs,
            self.function.outputs,
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            model_version=self.version,
        )

    async def close(self) -> None:
        self.ready = False
        await self.batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
