"""KEDA external scaler over gRPC: Kafka consumer lag of a function's request topic, KEDA's kafka maths.

Serves ``externalscaler.ExternalScaler`` (scalers/proto/externalscaler.proto, docs/scaler.md) for triggers of type
``external`` and ``external-push``. The trigger metadata is KEDA's kafka trigger metadata, or ``function: F``
for topic ``<prefix>.F.requests`` and group ``<prefix>-F``. Offsets are read by :class:`OffsetReader`s on a
bounded thread pool; the lag arithmetic is :class:`scalers.keda.KafkaLag`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVar

import grpc
from grpc import aio
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import InvalidInputError, WakeserveError
from events.contract import Topics
from events.settings import EventSettings
from scalers.keda import KafkaLag, KafkaTrigger, PartitionOffsets
from scalers.offsets import OffsetReader, OffsetsUnavailableError
from scalers.proto import externalscaler_pb2 as pb
from scalers.proto import externalscaler_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")


class ScalerSettings(BaseSettings):
    """The external scaler's server (``wakeserve scaler``); Kafka connection settings are EventSettings'."""

    model_config = SettingsConfigDict(env_prefix="WAKESERVE_", extra="ignore")

    scaler_host: str = Field("127.0.0.1", description="Bind address of the gRPC server (0.0.0.0 in a cluster).")
    scaler_port: int = Field(9090, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    scaler_stream_interval_s: float = Field(0.25, gt=0, description="How often StreamIsActive reads the offsets.")
    scaler_keepalive_s: float = Field(5.0, gt=0, description="StreamIsActive repeats an unchanged state this often.")
    scaler_max_concurrent_reads: int = Field(4, ge=1, description="Offset reads in flight at once (one thread each).")
    scaler_read_timeout_s: float = Field(5.0, gt=0, description="A broker that does not answer within this is down.")
    scaler_max_rpcs: int = Field(
        1024, ge=1, description="Concurrent RPCs, open streams included; more get RESOURCE_EXHAUSTED."
    )


# Re-exported for clients of the service (tests, tools); KEDA has its own.
ExternalScalerStub = pb_grpc.ExternalScalerStub
ScaledObjectRef = pb.ScaledObjectRef
IsActiveResponse = pb.IsActiveResponse
GetMetricSpecResponse = pb.GetMetricSpecResponse
MetricSpec = pb.MetricSpec
GetMetricsRequest = pb.GetMetricsRequest
GetMetricsResponse = pb.GetMetricsResponse
MetricValue = pb.MetricValue


@dataclass(frozen=True)
class Target:
    """What one ScaledObject's trigger measures, and the name of its metric."""

    trigger: KafkaTrigger
    metric_name: str


_FUNCTION = re.compile(r"[a-z0-9][a-z0-9_-]*")


def resolve(metadata: Mapping[str, str], topics: Topics) -> Target:
    """The trigger of ``scalerMetadata``: KEDA kafka keys, where ``function: F`` supplies topic and group."""
    meta = dict(metadata)
    function = meta.get("function", "")
    if function:
        if not _FUNCTION.fullmatch(function):
            raise InvalidInputError(f"invalid scalerMetadata: function {function!r} is not a function name")
        meta["topic"] = meta.get("topic") or topics.requests(function)
        meta["consumerGroup"] = meta.get("consumerGroup") or topics.group(function)
    try:
        trigger = KafkaTrigger.from_metadata(meta)
    except ValueError as exc:
        raise InvalidInputError(f"invalid scalerMetadata: {exc}") from exc
    return Target(trigger, "kafka-lag-" + re.sub(r"[^A-Za-z0-9-]+", "-", function or trigger.topic))


class OffsetSource(Protocol):
    """What the service needs of an :class:`OffsetReader` (blocking; called on the pool's threads)."""

    def read(self, topic: str, group: str) -> list[PartitionOffsets]: ...

    def close(self) -> None: ...


class ReaderPool:
    """At most ``size`` reads in flight, each on its own thread and its own reader (connections kept open)."""

    def __init__(self, factory: Callable[[], OffsetSource], size: int) -> None:
        self._factory = factory
        self._idle: list[OffsetSource] = []
        self._created: list[OffsetSource] = []
        self._slots = asyncio.Semaphore(size)
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="wakeserve-scaler")

    async def read(self, topic: str, group: str) -> list[PartitionOffsets]:
        await self._slots.acquire()
        try:
            reader = self._idle.pop() if self._idle else self._new_reader()
        except BaseException:
            self._slots.release()
            raise

        def release(_: object) -> None:
            self._idle.append(reader)
            self._slots.release()

        future = asyncio.get_running_loop().run_in_executor(self._executor, reader.read, topic, group)
        future.add_done_callback(release)
        # A cancelled caller (a stream KEDA closed) leaves the read to finish before its slot is reused.
        return await asyncio.shield(future)

    def _new_reader(self) -> OffsetSource:
        reader = self._factory()  # an OffsetReader connects on its first read
        self._created.append(reader)
        return reader

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._executor, r.close) for r in self._created))
        self._executor.shutdown(wait=False)


_STATUS = {400: grpc.StatusCode.INVALID_ARGUMENT, 503: grpc.StatusCode.UNAVAILABLE}


async def _abort(context: aio.ServicerContext[Any, Any], exc: Exception) -> NoReturn:
    """The one translation of errors into gRPC statuses."""
    if isinstance(exc, WakeserveError):
        await context.abort(_STATUS.get(exc.status, grpc.StatusCode.INTERNAL), exc.message)
    else:
        log.exception("unexpected error in the external scaler", exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
    raise AssertionError("context.abort raises")


async def _answer(context: aio.ServicerContext[Any, Any], call: Awaitable[T]) -> T:
    try:
        return await call
    except Exception as exc:  # noqa: BLE001 - every failure becomes a status, in _abort
        await _abort(context, exc)


@dataclass
class _Scaled:
    target: Target
    # Advanced by GetMetrics only: excludePersistentLag compares successive KEDA metric polls, and activity
    # (lag with persistent lag) does not depend on this history.
    metrics: KafkaLag


class ExternalScalerService(pb_grpc.ExternalScalerServicer):
    """The four RPCs; one lag history per ScaledObject (namespace/name), the most recent ``max_objects`` kept."""

    def __init__(self, readers: ReaderPool, topics: Topics, settings: ScalerSettings, max_objects: int = 1024) -> None:
        self._readers = readers
        self._topics = topics
        self._settings = settings
        self._max_objects = max_objects
        self._scaled: OrderedDict[tuple[str, str], _Scaled] = OrderedDict()

    def _scaled_object(self, ref: pb.ScaledObjectRef) -> _Scaled:
        target = resolve(ref.scalerMetadata, self._topics)
        key = (ref.namespace, ref.name)
        scaled = self._scaled.get(key)
        if scaled is None or scaled.target != target:
            scaled = _Scaled(target, KafkaLag(target.trigger))
        self._scaled[key] = scaled
        self._scaled.move_to_end(key)
        while len(self._scaled) > self._max_objects:
            self._scaled.popitem(last=False)
        return scaled

    async def _offsets(self, target: Target) -> list[PartitionOffsets]:
        return await self._readers.read(target.trigger.topic, target.trigger.consumer_group)

    async def is_active(self, ref: pb.ScaledObjectRef) -> pb.IsActiveResponse:
        target = self._scaled_object(ref).target
        report = KafkaLag(target.trigger).measure(await self._offsets(target))
        return IsActiveResponse(result=report.active)

    async def get_metric_spec(self, ref: pb.ScaledObjectRef) -> pb.GetMetricSpecResponse:
        target = self._scaled_object(ref).target
        threshold = target.trigger.lag_threshold
        spec = MetricSpec(metricName=target.metric_name, targetSize=threshold, targetSizeFloat=float(threshold))
        return GetMetricSpecResponse(metricSpecs=[spec])

    async def get_metrics(self, request: pb.GetMetricsRequest) -> pb.GetMetricsResponse:
        scaled = self._scaled_object(request.scaledObjectRef)
        report = scaled.metrics.measure(await self._offsets(scaled.target))
        value = MetricValue(
            metricName=request.metricName or scaled.target.metric_name,
            metricValue=report.total_lag,
            metricValueFloat=float(report.total_lag),
        )
        return GetMetricsResponse(metricValues=[value])

    async def stream_is_active(self, ref: pb.ScaledObjectRef) -> AsyncIterator[pb.IsActiveResponse]:
        """The first state at once, then every change, and the unchanged state every keep-alive period.

        A failed read keeps the last state and is retried at the next interval; the unary calls report it.
        """
        target = self._scaled_object(ref).target
        lag = KafkaLag(target.trigger)
        interval, keepalive = self._settings.scaler_stream_interval_s, self._settings.scaler_keepalive_s
        loop = asyncio.get_running_loop()
        state: bool | None = None
        sent_at = 0.0
        failing = False
        while True:
            started = loop.time()
            active: bool | None
            try:
                active = lag.measure(await self._offsets(target)).active
                if failing:
                    log.info("offsets of %s readable again", target.trigger.topic)
                failing = False
            except OffsetsUnavailableError as exc:
                if not failing:
                    log.warning("StreamIsActive keeps its last state: %s", exc.message)
                failing, active = True, state
            now = loop.time()
            if active is not None and (active != state or now - sent_at >= keepalive):
                state, sent_at = active, now
                yield IsActiveResponse(result=active)
            await asyncio.sleep(max(0.0, interval - (loop.time() - started)))

    # The RPCs as KEDA calls them (names from the .proto), each failure translated by _abort.

    async def IsActive(  # noqa: N802
        self, request: pb.ScaledObjectRef, context: aio.ServicerContext[Any, Any]
    ) -> pb.IsActiveResponse:
        return await _answer(context, self.is_active(request))

    async def StreamIsActive(  # noqa: N802
        self, request: pb.ScaledObjectRef, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.IsActiveResponse]:
        try:
            async for response in self.stream_is_active(request):
                yield response
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status, in _abort
            await _abort(context, exc)

    async def GetMetricSpec(  # noqa: N802
        self, request: pb.ScaledObjectRef, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetMetricSpecResponse:
        return await _answer(context, self.get_metric_spec(request))

    async def GetMetrics(  # noqa: N802
        self, request: pb.GetMetricsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetMetricsResponse:
        return await _answer(context, self.get_metrics(request))


@dataclass
class ScalerServer:
    """A started external scaler: its gRPC server, the port it is bound to, and the readers to close."""

    server: aio.Server
    port: int
    readers: ReaderPool

    async def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving (open streams end after ``grace`` seconds), then close the broker connections."""
        await self.server.stop(grace)
        await self.readers.close()


async def start_scaler_server(
    events: EventSettings,
    settings: ScalerSettings,
    *,
    reader_factory: Callable[[], OffsetSource] | None = None,
) -> ScalerServer:
    """Serve the external scaler on ``settings.scaler_host:scaler_port`` on the running event loop."""
    if reader_factory is None:
        kafka = events.kafka_config()

        def reader_factory() -> OffsetSource:
            return OffsetReader(kafka, timeout_s=settings.scaler_read_timeout_s)

    server = aio.server(maximum_concurrent_rpcs=settings.scaler_max_rpcs)
    host = settings.scaler_host
    port = server.add_insecure_port(
        f"[{host}]:{settings.scaler_port}" if ":" in host else f"{host}:{settings.scaler_port}"
    )
    readers = ReaderPool(reader_factory, settings.scaler_max_concurrent_reads)
    pb_grpc.add_ExternalScalerServicer_to_server(ExternalScalerService(readers, events.topics, settings), server)
    await server.start()
    return ScalerServer(server, port, readers)
