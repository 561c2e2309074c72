"""``wakeserve up``: the whole system on one machine, every function at zero until traffic wakes it.

Starts (unless pointed at real ones) the embedded Kafka broker and S3 server, creates topics and buckets,
uploads packaged artifacts the manifests refer to, then runs the gateway, one autoscaler per function and the
KEDA external scaler in this process, with real replica processes started and stopped on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from core.processes import ChildProcess, replica_argv, start_kafka, start_s3
from events.ingress import Ingress
from events.kafka import ensure_topics, make_producer
from events.settings import EventSettings
from wakeserve import status as status_view
from wakeserve.activator import Activator
from wakeserve.autoscaler import FunctionAutoscaler
from wakeserve.gateway import Gateway
from wakeserve.manifests import FunctionManifest
from wakeserve.pool import ReplicaPool
from wakeserve.rollout import RolloutController
from wakeserve.settings import UpSettings

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


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


class Runtime:
    """Everything ``wakeserve up`` runs, and its orderly shutdown."""

    def __init__(
        self, settings: UpSettings, events: EventSettings, functions: dict[str, FunctionManifest], *, quiet: bool
    ) -> None:
        self.settings = settings
        self.events = events
        self.functions = functions
        self.quiet = quiet
        self.children: list[ChildProcess] = []
        self.pools: dict[str, ReplicaPool] = {}
        self.scalers: dict[str, FunctionAutoscaler] = {}
        self.rollouts: dict[str, RolloutController] = {}
        self.endpoints: dict[str, str] = {}
        self.started = time.time()

    # -- embedded parts ------------------------------------------------------------------------------------------
    def start_embedded(self) -> None:
        s, logs = self.settings, self.settings.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        if self.events.s3_endpoint is None:
            # moto accepts any signature; placeholders keep boto3 from looking for real credentials.
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "wakeserve-local")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "wakeserve-local")
            os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
            self.children.append(start_s3(s.s3_port, host=s.host, log_path=logs / "s3.log"))
            self.events = self.events.model_copy(update={"s3_endpoint": f"http://{s.host}:{s.s3_port}"})
        if "kafka_bootstrap" not in self.events.model_fields_set:
            self.children.append(start_kafka(s.kafka_port, host=s.host, log_path=logs / "kafka.log"))
            self.events = self.events.model_copy(update={"kafka_bootstrap": f"{s.host}:{s.kafka_port}"})
        self.endpoints.update(kafka=self.events.kafka_bootstrap, s3=str(self.events.s3_endpoint or "AWS"))

    def prepare_storage(self) -> None:
        from core.s3 import S3Uri, make_s3_client

        client = make_s3_client(self.events.s3_endpoint)
        buckets = {*self.events.allowed_buckets, self.events.results_bucket, self.settings.models_bucket}
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in sorted(buckets - existing):
            client.create_bucket(Bucket=bucket)
        for manifest in self.functions.values():
            uri = manifest.env.get("WAKESERVE_MODEL_URI", "")
            packaged = PACKAGE_ROOT / "functions" / manifest.name / "artifact"
            if not uri.startswith("s3://") or not packaged.is_dir():
                continue
            target = S3Uri.parse(uri)
            prefix = target.key.rstrip("/")
            if client.list_objects_v2(Bucket=target.bucket, Prefix=prefix + "/").get("KeyCount", 0):
                continue
            for path in sorted(packaged.iterdir()):
                client.upload_file(str(path), target.bucket, f"{prefix}/{path.name}")
            log.info("uploaded %s to %s", packaged, uri)
        topics = self.events.topics
        ensure_topics(self.events, [topics.requests(f) for f in self.functions], self.settings.kafka_partitions)
        ensure_topics(self.events, [topics.results, topics.deadletter], self.settings.kafka_partitions)

    # -- replicas ------------------------------------------------------------------------------------------------
    def _argv_factory(self, function: str) -> Callable[[int], list[str]]:
        extra = ["--consume", "--kafka-bootstrap", self.events.kafka_bootstrap]
        if self.settings.watch:
            extra.append("--watch")
        if self.events.s3_endpoint:
            extra += ["--s3-endpoint", self.events.s3_endpoint]

        def argv(port: int) -> list[str]:
            return replica_argv(function, port, 0, *extra)

        return argv

    def _replica_env(self, manifest: FunctionManifest) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "WAKESERVE_GATEWAY_TOKEN"}
        env.update(manifest.env)
        env["WAKESERVE_KAFKA_SESSION_TIMEOUT_MS"] = str(self.settings.replica_session_timeout_ms)
        env["WAKESERVE_HOST"] = "127.0.0.1"
        return env

    # -- status --------------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        functions: dict[str, Any] = {}
        for name, pool in self.pools.items():
            scaler, traffic = self.scalers[name], self.activator.traffic[name]
            observed, last = scaler.observed, pool.counters.last_scale
            functions[name] = {
                "replicas": len(pool.live()),
                "ready": len(pool.ready()),
                "desired": pool.desired,
                "inflight": traffic.inflight,
                "held": traffic.held,
                "lag": observed.lag,
                "cold_starts": pool.counters.cold_starts,
                "crashes": pool.counters.crashes,
                "requests": traffic.requests,
                "last_scale": dataclasses.asdict(last) if last else None,
                "kpa": dataclasses.asdict(observed.kpa) if observed.kpa else None,
                "keda": dataclasses.asdict(observed.keda) if observed.keda else None,
                "lag_error": observed.lag_error,
                "pods": [r.snapshot() for r in pool.replicas],
                "rollout": self.rollouts[name].describe() if name in self.rollouts else None,
            }
        return {"functions": functions, "endpoints": self.endpoints, "uptime_s": round(time.time() - self.started, 1)}

    # -- main ----------------------------------------------------------------------------------------------------
    async def run(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await asyncio.to_thread(self.start_embedded)
            await asyncio.to_thread(self.prepare_storage)
            return await self._serve(stop)
        finally:
            for child in reversed(self.children):
                await asyncio.to_thread(child.stop)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _serve(self, stop: asyncio.Event) -> int:
        from scalers.offsets import OffsetReader

        s = self.settings
        limits = httpx.Limits(max_connections=2048, max_keepalive_connections=256)
        client = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=2.0), limits=limits)
        reader = OffsetReader(self.events.kafka_config())
        producer = make_producer(self.events)
        tasks: list[asyncio.Task[None]] = []
        try:
            for name, manifest in self.functions.items():
                self.pools[name] = ReplicaPool(
                    name,
                    self._argv_factory(name),
                    env=self._replica_env(manifest),
                    log_dir=s.state_dir / "logs",
                    client=client,
                )

            def held(function: str) -> None:
                self.scalers[function].poke()

            self.activator = Activator(
                self.pools,
                held,
                hold_timeout_s=s.hold_timeout_s,
                max_held=s.max_held,
                container_concurrency={n: m.kpa.container_concurrency for n, m in self.functions.items()},
            )
            for name, manifest in self.functions.items():
                self.scalers[name] = FunctionAutoscaler(
                    manifest, self.pools[name], functools.partial(self.activator.concurrency, name), reader
                )

            def woke_by_events(requests: Any) -> None:
                for model in {r.model for r in requests}:
                    self.scalers[model].poke(events=True)

            ingress = Ingress(producer, self.events, frozenset(self.functions), on_accepted=woke_by_events)
            for name in self.functions:
                self.rollouts[name] = RolloutController(self.pools[name], client, follow_replicas=s.watch)
            gateway = Gateway(self.activator, ingress, client, self.status, rollouts=self.rollouts)
            token = s.gateway_token.get_secret_value() if s.gateway_token else None
            server = _QuietServer(
                uvicorn.Config(gateway.app(token), host=s.host, port=s.http_port, log_level="warning", lifespan="off")
            )
            tasks.append(asyncio.create_task(server.serve()))
            for name in self.functions:
                tasks.append(asyncio.create_task(self.pools[name].watch(stop)))
                tasks.append(asyncio.create_task(self.scalers[name].run(stop)))
                tasks.append(asyncio.create_task(self.rollouts[name].run(stop)))
            if s.scaler_port:
                tasks.append(asyncio.create_task(self._scaler(stop)))
            while not server.started:
                if tasks[0].done():
                    raise RuntimeError(f"the gateway could not bind {s.host}:{s.http_port}")
                await asyncio.sleep(0.02)
            self.endpoints.update(gateway=f"http://{s.host}:{s.http_port}")
            if s.scaler_port:
                self.endpoints["scaler"] = f"{s.host}:{s.scaler_port}"
            header = status_view.banner(self.endpoints, sorted(self.functions))
            print(header, flush=True)
            await status_view.follow(self.status, stop, live=sys.stdout.isatty() and not self.quiet, header=header)
            server.should_exit = True
            return 0
        finally:
            stop.set()
            await asyncio.gather(*(pool.shutdown() for pool in self.pools.values()), return_exceptions=True)
            for task in tasks:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(task, 10)
            await client.aclose()
            await asyncio.to_thread(producer.close, 5)
            await asyncio.to_thread(reader.close)

    async def _scaler(self, stop: asyncio.Event) -> None:
        from scalers.external import ScalerSettings, start_scaler_server

        settings = ScalerSettings(scaler_host=self.settings.host, scaler_port=self.settings.scaler_port)
        scaler = await start_scaler_server(self.events, settings)
        try:
            await stop.wait()
        finally:
            await scaler.stop(1.0)
