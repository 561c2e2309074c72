"""``wakeserve up``: the whole system on one machine, every function at zero until traffic wakes it.

Starts (unless pointed at real ones) the embedded Kafka broker and S3 server, creates topics and buckets,
uploads packaged artifacts the manifests refer to, then runs the gateway, one autoscaler per function and the
KEDA external scaler in this process, with real replica processes started and stopped on demand. Once the
gateway serves, it writes the context file other commands find it by, and removes it when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn

from core.listener import server_config
from events.settings import EventSettings
from wakeserve import context, embedded
from wakeserve import status as status_view
from wakeserve.context import LOCAL_S3_CREDENTIALS, Context
from wakeserve.manifests import FunctionManifest
from wakeserve.settings import UpSettings
from wakeserve.supervision import Supervisor
from wakeserve.wiring import Connections, Parts


@dataclasses.dataclass(frozen=True)
class Overrides:
    """Experiment flags that replace what the manifests say (tests use short periods)."""

    stable_window_s: float | None = None
    scale_to_zero_grace_s: float | None = None
    cooldown_period_s: float | None = None
    polling_interval_s: float | None = None
    max_replicas: int | None = None
    scale_target: float | None = None
    lag_threshold: int | None = None

    def apply(self, manifest: FunctionManifest) -> FunctionManifest:
        kpa = manifest.kpa
        changes: dict[str, Any] = {}
        if self.stable_window_s is not None:
            changes["stable_window_s"] = self.stable_window_s
        if self.scale_to_zero_grace_s is not None:
            changes["scale_to_zero_grace_period_s"] = self.scale_to_zero_grace_s
        if self.max_replicas is not None:
            changes["max_scale"] = self.max_replicas
        if self.scale_target is not None:
            changes["target"] = self.scale_target
        kpa = dataclasses.replace(kpa, **changes)
        spec, trigger = manifest.scaled_object, manifest.trigger
        if spec is not None:
            so: dict[str, Any] = {}
            if self.cooldown_period_s is not None:
                so["cooldown_period_s"] = self.cooldown_period_s
            if self.polling_interval_s is not None:
                so["polling_interval_s"] = self.polling_interval_s
            if self.max_replicas is not None:
                so["max_replicas"] = self.max_replicas
            spec = dataclasses.replace(spec, **so)
        if trigger is not None and self.lag_threshold is not None:
            trigger = dataclasses.replace(trigger, lag_threshold=self.lag_threshold)
        return dataclasses.replace(manifest, kpa=kpa, scaled_object=spec, trigger=trigger)


class _QuietServer(uvicorn.Server):
    """Uvicorn without its own signal handling: ``up`` owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


def connect_host(host: str) -> str:
    """The address a client on this machine dials for a server bound to ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


class Runtime:
    """Everything ``wakeserve up`` runs, and its orderly shutdown.

    :meth:`run` goes: embedded parts, storage, shared connections, the wired parts, the gateway and the
    per-function loops, the context file, then the status display until SIGINT or SIGTERM; the way back
    drains every replica before the broker and S3 stop.
    """

    def __init__(
        self,
        settings: UpSettings,
        events: EventSettings,
        functions: dict[str, FunctionManifest],
        *,
        quiet: bool,
        log_file: Path | None = None,
    ) -> None:
        self.settings = settings
        self.events = events
        self.functions = functions
        self.quiet = quiet
        self.log_file = log_file
        self.started = time.time()
        self.supervisor = Supervisor()
        self.endpoints: dict[str, str] = {}
        self.embedded_s3 = False
        self.parts: Parts | None = None  # wired once the broker and S3 answer

    # -- steps ---------------------------------------------------------------------------------------------------
    def start_embedded(self) -> None:
        """The broker and the S3 server, unless flags or the environment name real ones."""
        need_s3 = self.events.s3_endpoint is None
        need_kafka = "kafka_bootstrap" not in self.events.model_fields_set
        embedded.require_parts(need_kafka=need_kafka, need_s3=need_s3)
        logs = self.settings.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        if need_s3:
            child, endpoint = embedded.start_s3_server(self.settings, logs)
            self.supervisor.add("S3 server", lambda: embedded.start_s3_server(self.settings, logs)[0], child)
            self.embedded_s3 = True
            self.events = self.events.model_copy(update={"s3_endpoint": endpoint})
        if need_kafka:
            s3 = self.events.s3_endpoint if self.embedded_s3 else None
            child, bootstrap = embedded.start_broker(self.settings, logs, s3)
            self.supervisor.add("broker", lambda: embedded.start_broker(self.settings, logs, s3)[0], child)
            self.events = self.events.model_copy(update={"kafka_bootstrap": bootstrap})
        self.endpoints.update(kafka=self.events.kafka_bootstrap, s3=str(self.events.s3_endpoint or "AWS"))
        self.endpoints.update(embedded.state_line(self.settings, embedded_s3=need_s3, embedded_kafka=need_kafka))

    def prepare_storage(self) -> None:
        embedded.prepare_storage(self.settings, self.events, self.functions)

    def _gateway_server(self, parts: Parts) -> _QuietServer:
        s = self.settings
        token = s.gateway_token.get_secret_value() if s.gateway_token else None
        limits = self.events.listener_limits(parts.gateway.max_body_bytes)
        config = server_config(
            parts.gateway.app(token), limits, host=s.host, port=s.http_port, log_level="warning", lifespan="off"
        )
        return _QuietServer(config)

    async def _until_serving(self, server: _QuietServer, serving: asyncio.Task[None]) -> None:
        while not server.started:
            if serving.done():
                raise embedded.StartError(
                    f"the gateway could not bind {self.settings.host}:{self.settings.http_port}; "
                    "is the port taken? Set --http-port"
                )
            await asyncio.sleep(0.02)

    def context_document(self) -> Context:
        """What other commands need to reach this ``up`` (placeholder S3 credentials only for the embedded S3)."""
        s = self.settings
        gateway = f"http://{connect_host(s.host)}:{s.http_port}"
        return Context(
            pid=os.getpid(),
            gateway_url=gateway,
            ingress_url=f"{gateway}/events",
            kafka_bootstrap=self.events.kafka_bootstrap,
            s3_endpoint=self.events.s3_endpoint,
            s3_credentials=dict(LOCAL_S3_CREDENTIALS) if self.embedded_s3 else {},
            gateway_token=s.gateway_token.get_secret_value() if s.gateway_token else None,
            admin_token=self.parts.admin_token if self.parts is not None else None,
        )

    def _announce(self) -> str:
        s = self.settings
        self.endpoints["gateway"] = f"http://{s.host}:{s.http_port}"
        if s.scaler_port:
            self.endpoints["scaler"] = f"{s.host}:{s.scaler_port}"
        self.endpoints["context"] = str(context.write(s.state_dir, self.context_document()))
        if self.log_file is not None:
            self.endpoints["logs"] = str(self.log_file)
        return status_view.banner(self.endpoints, sorted(self.functions))

    # -- status --------------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        functions = self.parts.status() if self.parts is not None else {}
        return {
            "functions": functions,
            "endpoints": self.endpoints,
            "embedded": self.supervisor.status(),
            "uptime_s": round(time.time() - self.started, 1),
        }

    # -- main ----------------------------------------------------------------------------------------------------
    async def run(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        watching: asyncio.Task[None] | None = None
        try:
            await asyncio.to_thread(self.start_embedded)
            watching = asyncio.create_task(self.supervisor.watch(stop))
            await asyncio.to_thread(self.prepare_storage)
            return await self._serve(stop)
        finally:
            context.remove(self.settings.state_dir, os.getpid())
            stop.set()
            if watching is not None:
                await watching
            await self.supervisor.stop_all()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _serve(self, stop: asyncio.Event) -> int:
        connections = Connections(self.events)
        tasks: list[asyncio.Task[None]] = []
        try:
            self.parts = Parts(self.settings, self.events, self.functions, connections, self.status)
            server = self._gateway_server(self.parts)
            serving = asyncio.create_task(server.serve())
            tasks.append(serving)
            tasks += self.parts.supervise(stop)
            if self.settings.scaler_port:
                tasks.append(asyncio.create_task(self._scaler(stop)))
            await self._until_serving(server, serving)
            print(self._announce(), flush=True)
            await status_view.follow(self.status, stop, live=sys.stdout.isatty() and not self.quiet)
            server.should_exit = True
            return 0
        finally:
            stop.set()
            if self.parts is not None:
                await self.parts.drain()
            for task in tasks:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(task, 10)
            await connections.close()

    async def _scaler(self, stop: asyncio.Event) -> None:
        from scalers.external import ScalerSettings, start_scaler_server

        settings = ScalerSettings(scaler_host=self.settings.host, scaler_port=self.settings.scaler_port)
        scaler = await start_scaler_server(self.events, settings)
        try:
            await stop.wait()
        finally:
            await scaler.stop(1.0)
