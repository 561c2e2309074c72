"""One predictor replica: KServe's v2 REST and gRPC data plane on a host we choose, loading in the background.

KServe's ``ModelServer`` binds 0.0.0.0 and only starts listening once the model is loaded. We compose the
same parts (``DataPlane``, the v2 routes, the gRPC servicer) ourselves so that the replica binds 127.0.0.1 by
default, answers liveness at once, and reports ready only after artifacts are loaded and warm-up has run.
A second, private listener (:mod:`functions.serving.admin`) carries everything that is not inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import warnings
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import FastAPIDeprecationWarning
from fastapi.responses import ORJSONResponse
from grpc import aio
from kserve.errors import ModelNotFound, ModelNotReady
from kserve.model import BaseKServeModel
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.v2_endpoints import register_v2_endpoints
from prometheus_client import CollectorRegistry, exposition

from core.bearer import RequireBearer
from core.body_limit import ASGIApp, BodyLimit
from core.errors import NotImplementedFeatureError
from core.listener import ListenerLimits, server_config
from functions.serving.admin import build_admin_app, guarded
from functions.serving.generation_routes import GenerationRoutes
from functions.serving.rest import V2InferRoute
from functions.serving.runtime import FunctionModel
from functions.serving.startup import StartupTimeline
from functions.serving.transport_errors import GrpcErrorInterceptor, install_http_handlers
from functions.serving.v2grpc import V2Servicer

log = logging.getLogger(__name__)
GRPC_MAX_MESSAGE = 64 * 1024 * 1024
# What the inference token leaves open: probes and scrapes, which carry no credential.
OPEN_PATHS = frozenset({"/", "/metrics", "/v2/health/live", "/v2/health/ready"})


def is_open(path: str) -> bool:
    """Health, readiness (of the server or of one model) and metrics: callable without the inference token."""
    return path in OPEN_PATHS or (path.startswith("/v2/models/") and path.endswith("/ready"))


def inference_listener(app: ASGIApp, limits: ListenerLimits, token: str | None) -> ASGIApp:
    """What the inference port serves: ``app`` behind the body limit and, when configured, the inference token."""
    guarded_app = app if token is None else RequireBearer(app, token, "inference API", is_open)
    return BodyLimit(guarded_app, limits.max_body_bytes)


class ReplicaDataPlane(DataPlane):  # type: ignore[misc]
    """KServe's data plane, except that readiness means every model is loaded and nothing loads lazily."""

    async def ready(self) -> bool:
        models = self.model_registry.get_models().values()
        return bool(models) and all(m.ready for m in models)

    async def get_model(self, name: str) -> BaseKServeModel:
        model = self.model_registry.get_model(name)
        if model is None:
            raise ModelNotFound(name)
        if not model.ready:
            raise ModelNotReady(name, "It is still loading.")
        return model


def build_app(dataplane: DataPlane, registry: CollectorRegistry) -> FastAPI:
    """The inference application: v2 routes, /metrics and the error translation, and nothing that changes
    or reveals the replica (see :mod:`functions.serving.admin`)."""
    # KServe's v2 routes build their responses with orjson, as plain KServe does; FastAPI 0.16x flags it.
    warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)
    app = FastAPI(
        title="wakeserve predictor",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        default_response_class=ORJSONResponse,
    )

    async def metrics(request: Request) -> Response:
        encoder, content_type = exposition.choose_encoder(request.headers.get("accept", ""))
        return Response(content=encoder(registry), headers={"content-type": content_type})

    async def no_repository(model_name: str) -> None:
        raise NotImplementedFeatureError("the model repository extension is not served on the inference port")

    app.add_api_route("/metrics", metrics, methods=["GET"])
    app.add_api_route("/", dataplane.live, methods=["GET"])
    # Registered before KServe's routes, so these match first and KServe's repository routes are unreachable.
    for action in ("load", "unload"):
        app.add_api_route(f"/v2/repository/models/{{model_name}}/{action}", no_repository, methods=["POST"])
    register_v2_endpoints(app, dataplane, None)
    install_http_handlers(app)
    return app


class _Server(uvicorn.Server):
    """Uvicorn that exits cleanly on SIGTERM/SIGINT (not re-raising the signal) and marks ``listening``."""

    def __init__(self, config: uvicorn.Config, startup: StartupTimeline | None) -> None:
        super().__init__(config)
        self.startup_timeline = startup
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            if self.startup_timeline is not None:
                self.startup_timeline.mark("listening")
            self.listening.set()

    @property
    def bound_port(self) -> int:
        """The port actually bound (the configured one, or the one picked for port 0)."""
        return int(self.servers[0].sockets[0].getsockname()[1])

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_event_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


class _AdminServer(_Server):
    """The admin listener: stopped with the inference server, so it leaves the process's signals alone."""

    admin_token: str | None = None

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            token = "bearer token required" if self.admin_token else "no token"
            log.info(
                "admin listener (control API, startup, OpenAPI) on http://%s:%d (%s)",
                self.config.host,
                self.bound_port,
                token,
            )

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _grpc_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class PredictorServer:
    """REST + gRPC servers for a set of models on one host; models load after the sockets are open."""

    def __init__(
        self,
        models: list[FunctionModel],
        registry: CollectorRegistry,
        *,
        host: str,
        http_port: int,
        grpc_port: int,
        grace_period_s: float = 30.0,
        max_body_bytes: int = 64 * 1024 * 1024,
        startup: StartupTimeline | None = None,
        admin_host: str = "127.0.0.1",
        admin_port: int = 8082,
        admin_token: str | None = None,
        enable_repository_api: bool = False,
        limits: ListenerLimits | None = None,
        inference_token: str | None = None,
        grpc_max_concurrent_rpcs: int = 1024,
    ) -> None:
        self.models = models
        self.startup = startup or StartupTimeline()
        repository = ModelRepository()
        for model in models:
            repository.update(model)
        self.dataplane = ReplicaDataPlane(model_registry=repository)
        self.rest_app = build_app(self.dataplane, registry)
        self.app = GenerationRoutes(
            V2InferRoute(self.rest_app, self.dataplane, max_body_bytes), repository, max_body_bytes
        )
        self.repository = ModelRepositoryExtension(model_registry=repository) if enable_repository_api else None
        self.admin_token = admin_token
        self.admin_app = build_admin_app(self.startup, self.repository)
        self.admin_host = admin_host
        self.limits = dataclasses.replace(limits or ListenerLimits(), max_body_bytes=max_body_bytes)
        self.admin: _AdminServer = _AdminServer(
            server_config(
                BodyLimit(guarded(self.admin_app, admin_token), max_body_bytes),
                self.limits,
                host=admin_host,
                port=admin_port,
                log_config=None,
                access_log=False,
            ),
            None,
        )
        self.admin.admin_token = admin_token
        self.host, self.http_port, self.grpc_port = host, http_port, grpc_port
        self.grace_period_s = grace_period_s
        self.exit_code = 0
        self.grpc_max_concurrent_rpcs = grpc_max_concurrent_rpcs
        config = server_config(
            inference_listener(self.app, self.limits, inference_token),
            self.limits,
            host=host,
            port=http_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(grace_period_s),
            timeout_keep_alive=65,
        )
        self.http = _Server(config, self.startup)
        self.grpc: aio.Server | None = None

    async def _start_grpc(self) -> None:
        if not self.grpc_port:
            return
        self.grpc = aio.server(
            interceptors=(GrpcErrorInterceptor(),),
            maximum_concurrent_rpcs=self.grpc_max_concurrent_rpcs,
            options=[
                ("grpc.max_send_message_length", GRPC_MAX_MESSAGE),
                ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE),
            ],
        )
        servicer = V2Servicer(
            self.dataplane,
            self.repository or ModelRepositoryExtension(self.dataplane.model_registry),
            repository_enabled=self.repository is not None,
            admin_token=self.admin_token,
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self.grpc)
        self.grpc.add_insecure_port(_grpc_address(self.host, self.grpc_port))
        await self.grpc.start()

    def _load_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("loading failed, stopping the replica: %s", exc, exc_info=exc)
            self.exit_code = 1
            self.http.should_exit = True
            return
        for model in self.models:
            example = " ".join(f"{s.name} {s.datatype}{list(s.shape)}" for s in model.function.inputs)
            log.info(
                "ready: POST http://%s:%d/v2/models/%s/infer with a v2 request (inputs: %s); "
                "metadata at GET /v2/models/%s",
                self.host,
                self.http_port,
                model.name,
                example,
                model.name,
            )

    async def _when_ready(
        self,
        loads: list[asyncio.Task[None]],
        worker: Callable[[asyncio.Event], Awaitable[None]] | None,
        stop: asyncio.Event,
        on_ready: Callable[[], object] | None,
    ) -> None:
        """Once every model is loaded and the HTTP socket is open: log the startup phases, run ``worker``."""
        await asyncio.gather(*loads)
        await self.http.listening.wait()
        await self._warm_routes()
        self.startup.mark("ready")
        if on_ready is not None:
            on_ready()
        self.startup.log_ready()
        if worker is None:
            return
        self._worker_started = True
        await self._run_worker(worker, stop)

    async def _warm_routes(self) -> dict[str, int]:
        """One in-process GET of each read-only route before the replica reports ready; their statuses.

        A route's first call through the FastAPI stack costs several milliseconds of one-time work on the
        event loop; paid during a rollout (the first control call) it delayed the requests behind it.
        """
        paths: list[tuple[ASGIApp, str]] = [(self.app, "/v2/health/ready"), (self.app, "/metrics")]
        for model in self.models:
            paths += [(self.app, f"/v2/models/{model.name}")]
            paths += [(self.admin_app, f"/wakeserve/models/{model.name}/{p}") for p in ("slots", "stats")]
        statuses: dict[str, int] = {}
        for app, path in paths:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://replica.local") as client:
                try:
                    statuses[path] = (await client.get(path)).status_code
                except Exception as exc:  # noqa: BLE001 - warming is best effort
                    log.debug("warming %s failed: %s", path, exc)
        return statuses

    async def _serve_admin(self) -> None:
        """The admin listener until the inference server stops; a replica without it stops (exit code 1)."""
        try:
            await self.admin.serve()
        except SystemExit:  # uvicorn's answer to a port it cannot bind
            log.error("the admin listener could not start on %s; stopping the replica", self.admin_host)
            self.exit_code = 1
            self.http.should_exit = True
            return
        if not self.admin.started:
            self.exit_code = 1
            self.http.should_exit = True

    async def _run_worker(self, worker: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event) -> None:
        try:
            await worker(stop)
        except Exception as exc:
            log.error("background worker failed, stopping the replica: %s", exc, exc_info=exc)
            self.exit_code = 1
            self.http.should_exit = True

    async def serve(
        self,
        resolvers: dict[str, Callable[[], Path | None]],
        after_ready: Callable[[asyncio.Event], Awaitable[None]] | None = None,
        on_ready: Callable[[], object] | None = None,
        during_startup: Callable[[asyncio.Event], Awaitable[None]] | None = None,
    ) -> int:
        """Run until SIGTERM/SIGINT; returns the process exit code (1 when loading or a worker failed).

        ``on_ready`` is called once when every model is ready and the HTTP socket is open. ``after_ready``
        (the event consumer) starts then and is asked to stop, and awaited, before the models are released.
        ``during_startup`` is the same kind of worker started at once, while the models load.
        """
        await self._start_grpc()
        loop = asyncio.get_running_loop()
        admin = loop.create_task(self._serve_admin())
        loads = []
        for model in self.models:
            task = loop.create_task(model.load_async(resolvers[model.name], self.startup.mark))
            task.add_done_callback(self._load_done)
            loads.append(task)
        stop = asyncio.Event()
        self._worker_started = False
        when_ready = loop.create_task(self._when_ready(loads, after_ready, stop, on_ready))
        early = None if during_startup is None else loop.create_task(self._run_worker(during_startup, stop))
        log.info("serving on http://%s:%d (gRPC %s)", self.host, self.http_port, self.grpc_port or "off")
        try:
            await self.http.serve()
        finally:
            self.admin.should_exit = True
            await admin
            stop.set()
            for task in loads:
                if not task.done():
                    task.cancel()
            if not self._worker_started:
                when_ready.cancel()
            await asyncio.gather(when_ready, *([early] if early else []), return_exceptions=True)
            if self.grpc is not None:
                await self.grpc.stop(grace=self.grace_period_s)
            for model in self.models:
                await model.close()
        if not self.http.started and self.exit_code == 0:
            self.exit_code = 1
        return self.exit_code
