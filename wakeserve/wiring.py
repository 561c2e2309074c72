"""The in-process parts of ``wakeserve up``, wired together once the broker and S3 are reachable.

Per function: a replica pool, an autoscaler and a rollout controller. Shared: the activator holding requests
for sleeping functions, the ingress producing events, and the gateway in front of both. Holding a request
or accepting an event pokes the function's autoscaler, which is how traffic wakes a function at zero.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from kafka import KafkaProducer

from core.processes import replica_argv
from events import contract
from events.ingress import Ingress
from events.kafka import make_producer
from events.settings import EventSettings
from scalers.offsets import OffsetReader
from wakeserve.activator import Activator
from wakeserve.autoscaler import FunctionAutoscaler
from wakeserve.gateway import Gateway, generative_functions
from wakeserve.manifests import FunctionManifest
from wakeserve.pool import ReplicaPool
from wakeserve.rollout import RolloutController
from wakeserve.settings import UpSettings


class Connections:
    """The clients every part shares: HTTP to replicas, the offset reader, the ingress's producer."""

    def __init__(self, events: EventSettings) -> None:
        limits = httpx.Limits(max_connections=2048, max_keepalive_connections=256)
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=2.0), limits=limits)
        self.reader = OffsetReader(events.kafka_config())
        self.producer: KafkaProducer = make_producer(events)

    async def close(self) -> None:
        await self.client.aclose()
        await asyncio.to_thread(self.producer.close, 5)
        await asyncio.to_thread(self.reader.close)


class Parts:
    """Pools, activator, autoscalers, rollouts, ingress and gateway of every function, wired."""

    def __init__(
        self,
        settings: UpSettings,
        events: EventSettings,
        functions: dict[str, FunctionManifest],
        connections: Connections,
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self.settings = settings
        self.events = events
        # The replicas' admin listeners and the gateway's rollout routes take this token (WAKESERVE_ADMIN_TOKEN,
        # else a fresh one); only this process and the owner-only context file hold it.
        self.admin_token = os.environ.get("WAKESERVE_ADMIN_TOKEN") or secrets.token_urlsafe(32)
        # The replicas' inference ports take only this one, which only the gateway adds: nothing reaches a
        # replica around the gateway (and its token), whatever the replica's port shown in the status.
        self.inference_token = secrets.token_urlsafe(32)
        self.pools: dict[str, ReplicaPool] = {
            name: ReplicaPool(
                name,
                self._argv_factory(name),
                env=self._replica_env(manifest),
                log_dir=settings.state_dir / "logs",
                client=connections.client,
                admin_token=self.admin_token,
            )
            for name, manifest in functions.items()
        }
        self.activator = Activator(
            self.pools,
            self._held,
            hold_timeout_s=settings.hold_timeout_s,
            max_held=settings.max_held,
            container_concurrency={n: m.kpa.container_concurrency for n, m in functions.items()},
        )
        self.scalers: dict[str, FunctionAutoscaler] = {
            name: FunctionAutoscaler(
                manifest,
                self.pools[name],
                functools.partial(self.activator.concurrency, name),
                connections.reader,
                rollout_running=functools.partial(self._rollout_running, name),
            )
            for name, manifest in functions.items()
        }
        self.rollouts: dict[str, RolloutController] = {
            name: RolloutController(
                self.pools[name], connections.client, follow_replicas=settings.watch, admin_token=self.admin_token
            )
            for name in functions
        }
        self.ingress = Ingress(connections.producer, events, frozenset(functions), on_accepted=self._woke_by_events)
        self.gateway = Gateway(
            self.activator,
            self.ingress,
            connections.client,
            status,
            rollouts=self.rollouts,
            admin_token=self.admin_token,
            inference_token=self.inference_token,
            generative=generative_functions(functions),
            keepalive_s=settings.gateway_keepalive_s,
        )

    def _rollout_running(self, function: str) -> bool:
        return self.rollouts[function].needs_replica

    def _held(self, function: str) -> None:
        self.scalers[function].poke()

    def _woke_by_events(self, requests: Sequence[contract.InferenceRequest]) -> None:
        for model in {r.model for r in requests}:
            self.scalers[model].poke(events=True)

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
        env["WAKESERVE_ADMIN_TOKEN"] = self.admin_token
        env["WAKESERVE_SUPERVISOR_PID"] = str(os.getpid())  # replicas stop if up dies without draining them
        env["WAKESERVE_INFERENCE_TOKEN"] = self.inference_token
        return env

    def supervise(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """Start each function's replica watch, autoscaler and rollout loops until ``stop``."""
        tasks = []
        for name in self.pools:
            tasks.append(asyncio.create_task(self.pools[name].watch(stop)))
            tasks.append(asyncio.create_task(self.scalers[name].run(stop)))
            tasks.append(asyncio.create_task(self.rollouts[name].run(stop)))
        return tasks

    async def drain(self) -> None:
        await asyncio.gather(*(pool.shutdown() for pool in self.pools.values()), return_exceptions=True)

    def status(self) -> dict[str, dict[str, Any]]:
        """Per function: replicas, traffic, lag, the last scaling decisions and the rollout."""
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
                "rollout": self.rollouts[name].describe(),
            }
        return functions
