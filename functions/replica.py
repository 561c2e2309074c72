"""Assemble and run one replica of one function from its settings (the body of ``wakeserve serve``)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from prometheus_client import CollectorRegistry

from events.settings import EventSettings
from events.worker import build_processor, consume
from functions import artifacts, catalog
from functions.event_invoker import InProcessInvoker
from functions.events_bridge import add_cloudevents_route
from functions.metrics import PredictorMetrics
from functions.runtime import FunctionModel
from functions.server import PredictorServer
from functions.settings import PredictorSettings


def build_model(name: str, settings: PredictorSettings, metrics: PredictorMetrics) -> FunctionModel:
    function = catalog.create(name)
    defaults = function.batching
    return FunctionModel(
        function,
        metrics,
        max_batch_size=settings.max_batch_size or defaults.max_batch_size,
        max_delay_ms=defaults.max_delay_ms if settings.max_batch_delay_ms is None else settings.max_batch_delay_ms,
        max_queue=settings.max_queue or defaults.max_queue,
    )


def artifact_resolver(model: FunctionModel, settings: PredictorSettings) -> Path | None:
    """Runs on the model's worker thread: resolve the encoder (if any) and the function's artifacts."""
    from events.s3 import make_s3_client

    def client():  # type: ignore[no-untyped-def]
        return make_s3_client(settings.s3_endpoint)

    encoder = artifacts.resolve(settings.encoder_uri, settings.model_cache_dir, client)
    if encoder is not None and hasattr(model.function, "encoder_checkpoint"):
        model.function.encoder_checkpoint = encoder
    return artifacts.resolve(settings.model_uri, settings.model_cache_dir, client)


def run(
    name: str, settings: PredictorSettings, events: EventSettings | None = None, consume_events: bool = False
) -> int:
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
    )
    events = events or EventSettings()
    processor = build_processor(frozenset([name]), InProcessInvoker({name: model}), events)
    add_cloudevents_route(server.rest_app, processor)

    async def consumer(stop: asyncio.Event) -> None:
        await consume(name, processor, events, stop)

    serve = server.serve({name: lambda: artifact_resolver(model, settings)}, consumer if consume_events else None)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve)
    return uvloop.run(serve)
