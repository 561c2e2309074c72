"""The activator: route a request to the least-loaded ready replica, or hold it while its function wakes.

Like Knative's activator it buffers requests for a function with no ready replica (a bounded number, for a
bounded time), asks the autoscaler to scale up at once, and counts the requests it is handling (held and
forwarded) as the function's concurrency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from core.errors import OverloadedError, UnknownModelError
from wakeserve.pool import Replica, ReplicaPool


@dataclass
class Traffic:
    """Live counters of one function at the activator."""

    inflight: int = 0
    held: int = 0
    requests: int = 0
    timeouts: int = 0
    rejected: int = 0


class Activator:
    """Hands out replicas; holds requests while a function is at zero or every replica is at its limit."""

    def __init__(
        self,
        pools: dict[str, ReplicaPool],
        poke: Callable[[str], None],
        *,
        hold_timeout_s: float = 120.0,
        max_held: int = 1000,
        container_concurrency: dict[str, int] | None = None,
    ) -> None:
        self.pools = pools
        self.poke = poke
        self.hold_timeout_s = hold_timeout_s
        self.max_held = max_held
        self.limits = container_concurrency or {}
        self.traffic = {name: Traffic() for name in pools}

    def concurrency(self, function: str) -> int:
        return self.traffic[function].inflight

    @asynccontextmanager
    async def replica(self, function: str) -> AsyncIterator[Replica]:
        """A replica to send one request to; it counts as in flight on that replica until the block ends."""
        pool = self.pools.get(function)
        if pool is None:
            raise UnknownModelError(f"model {function!r} is not served here; known: {', '.join(sorted(self.pools))}")
        traffic = self.traffic[function]
        traffic.inflight += 1
        traffic.requests += 1
        try:
            replica = pool.pick(self.limits.get(function, 0)) or await self._hold(function, pool, traffic)
            replica.inflight += 1
            try:
                yield replica
            finally:
                replica.inflight -= 1
                replica.served += 1
                await pool.notify()
        finally:
            traffic.inflight -= 1

    async def _hold(self, function: str, pool: ReplicaPool, traffic: Traffic) -> Replica:
        if traffic.held >= self.max_held:
            traffic.rejected += 1
            raise OverloadedError(f"{self.max_held} requests for {function!r} are already waiting for a replica")
        traffic.held += 1
        self.poke(function)
        deadline = time.monotonic() + self.hold_timeout_s
        try:
            async with pool.changed:
                while True:
                    replica = pool.pick(self.limits.get(function, 0))
                    if replica is not None:
                        return replica
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        traffic.timeouts += 1
                        raise OverloadedError(
                            f"no replica of {function!r} became ready within {self.hold_timeout_s:g}s; retry later"
                        )
                    try:
                        await asyncio.wait_for(pool.changed.wait(), min(remaining, 1.0))
                    except TimeoutError:
                        if not pool.live():
                            self.poke(function)
        finally:
            traffic.held -= 1
