"""Assemble and run one replica of one function from its settings (the body of ``wakeserve serve``).

Only what the first inference response needs is on the cold-start path. The event machinery (Kafka client,
S3 client for payloads) is imported and built in a thread: with ``--consume`` while the model loads (so the
consumer group is joined by the time the model is ready), otherwise on the first CloudEvent over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from events.settings import EventSettings
from functions import catalog
from functions.contract import Function, GenerativeFunction
from functions.generation.limits import EngineLimits, EngineStats
from functions.hotswap import watch
from functions.hotswap.authority import Authority
from functions.hotswap.control import add_control_routes
from functions.hotswap.gates import GatePolicy, load_golden
from functions.serving import admin, artifact_checks, artifacts
from functions.serving.event_invoker import InProcessInvoker
from functions.serving.events_bridge import add_cloudevents_route
from functions.serving.metrics import PredictorMetrics
from functions.serving.runtime import FunctionModel
from functions.serving.server import PredictorServer
from functions.serving.settings import PredictorSettings
from functions.serving.startup import StartupTimeline, resume_gc
from functions.serving.supervisor import stop_with_supervisor

if TYPE_CHECKING:
    from events.processor import EventProcessor


def build_model(name: str, settings: PredictorSettings, metrics: PredictorMetrics) -> FunctionModel:
    defaults = catalog.create(name).batching
    max_batch_size = settings.max_batch_size or defaults.max_batch_size
    max_queue = settings.max_queue or defaults.max_queue
    model: FunctionModel | None = None

    def engine_stats() -> EngineStats | None:
        function = model.function if model is not None else None
        engine = function.engine if isinstance(function, GenerativeFunction) else None
        return engine.stats() if engine is not None else None

    observer = None
    if isinstance(catalog.create(name), GenerativeFunction):
        from functions.generation.metrics import GenerationMetrics

        observer = GenerationMetrics(metrics.registry, name, engine_stats)

    def make_function(reload_source: bool) -> Function:
        if reload_source:
            watch.forget_modules(name)
        function = catalog.create(name)
        if isinstance(function, GenerativeFunction):
            limits = EngineLimits(max_running=max_batch_size, max_waiting=max_queue)
            function.configure(limits, observer, settings.model_cache_dir / ".converted")
        return function

    function = make_function(False)

    cache = artifact_cache(settings)

    def resolve(candidate: Function, model_uri: str | None) -> Path | None:
        return resolve_artifacts(candidate, model_uri, settings, cache)

    model = FunctionModel(
        function,
        metrics,
        max_batch_size=max_batch_size,
        max_delay_ms=defaults.max_delay_ms if settings.max_batch_delay_ms is None else settings.max_batch_delay_ms,
        max_queue=max_queue,
        make_function=make_function,
        resolve=resolve,
        policy=GatePolicy(
            latency_factor=settings.gate_latency_factor,
            latency_runs=settings.gate_latency_runs,
            memory_budget_mb=settings.swap_memory_budget_mb,
        ),
        golden=load_golden(watch.package_dir(name) / "golden.json"),
        model_uri=settings.model_uri,
        version=settings.model_version,
        version_suffix=f"+src.{watch.digest(watch.package_dir(name))}" if settings.watch else "",
    )
    model.lifecycle.release_artifacts = cache.release
    return model


def artifact_cache(settings: PredictorSettings) -> artifacts.ArtifactCache:
    """The replica's artifact cache: s3:// listings held to ``max_artifact_bytes`` before any download."""

    def client():  # type: ignore[no-untyped-def]
        from core.s3 import make_s3_client  # boto3 is imported only for s3:// artifacts

        return make_s3_client(settings.s3_endpoint)

    return artifacts.ArtifactCache(settings.model_cache_dir, client, settings.max_artifact_bytes)


def resolve_artifacts(
    function: Function, model_uri: str | None, settings: PredictorSettings, cache: artifacts.ArtifactCache
) -> Path | None:
    """Blocking: resolve the encoder (if the function has one) and the function's artifacts, each checked
    (size from the listing before download, then size and headers on disk) before anything is loaded; the
    cache entries are leased for ``function`` and the entries no version uses any more are evicted."""
    encoder = cache.resolve(settings.encoder_uri, function)
    artifact_checks.check_directory(encoder, settings.max_artifact_bytes)
    if encoder is not None and hasattr(function, "encoder_checkpoint"):
        function.encoder_checkpoint = encoder
    path = cache.resolve(model_uri, function)
    artifact_checks.check_directory(path, settings.max_artifact_bytes)
    cache.evict()
    return path


def artifact_resolver(model: FunctionModel, settings: PredictorSettings) -> Path | None:
    """Runs on the model's worker thread: the first version's artifacts (their digest noted)."""
    return model.lifecycle.resolve_first(model.function, settings.model_uri)


def authority(name: str, settings: PredictorSettings, events: EventSettings) -> Authority:
    """What the control API may load into ``name``: never from the buckets event senders write to."""
    return Authority(
        allowlist=settings.uri_allowlist(),
        packaged_dir=watch.package_dir(name),
        forbidden_buckets=events.allowed_buckets | {events.results_bucket},
        skippable_gates=settings.skippable_gates(),
    )


class DeferredProcessor:
    """The event processor, built once in a thread on first use; a failed build is retried on the next."""

    def __init__(self, build: Callable[[], EventProcessor]) -> None:
        self._build = build
        self._task: asyncio.Future[EventProcessor] | None = None

    async def get(self) -> EventProcessor:
        if self._task is None or (self._task.done() and self._task.exception() is not None):
            self._task = asyncio.ensure_future(asyncio.to_thread(self._build))
        return await asyncio.shield(self._task)


def run(
    name: str,
    settings: PredictorSettings,
    events: EventSettings | None = None,
    consume_events: bool = False,
    entered_at: float | None = None,
) -> int:
    """Serve ``name`` until SIGTERM; ``entered_at`` is when the command began, for the startup timeline."""
    startup = StartupTimeline()
    if entered_at is not None:
        startup.mark("entry", entered_at)
    startup.mark("imports")
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    registry = CollectorRegistry()
    model = build_model(name, settings, PredictorMetrics(registry))
    server = PredictorServer(
        [model],
        registry,
        host=settings.host,
        http_port=settings.http_port,
        grpc_port=settings.grpc_port,
        grace_period_s=settings.grace_period_s,
        max_body_bytes=settings.max_body_bytes,
        startup=startup,
        admin_host=settings.admin_host,
        admin_port=settings.admin_port,
        admin_token=settings.admin_secret(),
        enable_repository_api=settings.enable_repository_api,
        limits=settings.listener_limits(settings.max_body_bytes),
        inference_token=settings.inference_secret(),
        grpc_max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
    )
    event_settings = events or EventSettings()

    def build() -> EventProcessor:
        from events.worker import build_processor

        return build_processor(frozenset([name]), InProcessInvoker({name: model}), event_settings)

    processor = DeferredProcessor(build)
    add_cloudevents_route(server.rest_app, processor.get)
    add_control_routes(server.admin_app, {name: model}, {name: authority(name, settings, event_settings)}, admin.audit)

    async def consumer(stop: asyncio.Event) -> None:
        # Started while the model loads: the Kafka/S3 clients are built and the group joined (tansu takes
        # half the session timeout to admit a member) in that time, so an event that woke the replica is
        # processed as soon as the model is ready. Events fetched earlier wait in the in-process invoker.
        built = await processor.get()
        from events.worker import consume

        await consume(name, built, event_settings, stop)

    async def source_watch(stop: asyncio.Event) -> None:
        skip = frozenset(g.strip() for g in settings.watch_skip_gates.split(",") if g.strip())
        root = watch.package_dir(name)
        await watch.watch(model.lifecycle, root, settings.model_version, skip, settings.watch_interval_s, stop)

    if settings.supervisor_pid is not None:
        stop_with_supervisor(settings.supervisor_pid)
    serve = server.serve(
        {name: lambda: artifact_resolver(model, settings)},
        after_ready=source_watch if settings.watch else None,
        on_ready=resume_gc,
        during_startup=consumer if consume_events else None,
    )
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve)
    return uvloop.run(serve)
