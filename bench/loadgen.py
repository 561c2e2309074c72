"""A lean closed-loop HTTP/1.1 load generator (keep-alive, pre-encoded requests) for loopback benchmarks.

It spends far less CPU per request than an HTTP client library, which matters on a two-core machine where
the client and the server share the CPU. Bounded by a request count and a time limit.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """Latencies (seconds) of successful requests, status counts and the wall time of the run."""

    concurrency: int
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    wall: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != 200)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q / 100 * len(data)))]

    def summary(self) -> dict[str, float | int]:
        return {
            "concurrency": self.concurrency,
            "requests": self.ok,
            "errors": self.errors,
            "throughput_rps": self.ok / self.wall if self.wall else 0.0,
            "p50_ms": self.percentile(50) * 1000,
            "p99_ms": self.percentile(99) * 1000,
            "mean_ms": statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan"),
        }


def encode_post(host: str, port: int, path: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def _worker(
    host: str, port: int, requests: itertools.cycle[bytes], result: LoadResult, stop_at: float, budget: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while budget[0] > 0 and time.perf_counter() < stop_at:
            budget[0] -= 1
            start = time.perf_counter()
            writer.write(next(requests))
            status = await _read_response(reader)
            if status == 200:
                result.latencies.append(time.perf_counter() - start)
            result.statuses[status] = result.statuses.get(status, 0) + 1
    finally:
        writer.close()


async def run_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    concurrency: int,
    duration: float,
    max_requests: int = 1_000_000,
    warmup: float = 1.0,
) -> LoadResult:
    """Closed loop: ``concurrency`` connections each send the next request as soon as the last is answered."""
    if warmup > 0:
        await run_load(host, port, requests, concurrency=concurrency, duration=warmup, warmup=0)
    result = LoadResult(concurrency)
    cycle = itertools.cycle(requests)
    budget = [max_requests]
    started = time.perf_counter()
    await asyncio.gather(*(_worker(host, port, cycle, result, started + duration, budget) for _ in range(concurrency)))
    result.wall = time.perf_counter() - started
    return result
