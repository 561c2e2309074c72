"""Closed-loop streaming clients of the OpenAI chat route, with the SSE parsed here (httpx, asyncio), and the
replica's generation counters read from ``/metrics``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from bench.generate_raw import user_text
from bench.generate_summary import StreamTiming, counters

HOST = "127.0.0.1"
MODEL = "generator"
COUNTERS = (
    "wakeserve_generation_tokens_total",
    "wakeserve_generation_cancelled_requests_total",
    "wakeserve_generation_tokens_after_cancel_total",
    "wakeserve_generation_cancelled_tokens_not_generated_total",
    "wakeserve_generation_time_to_first_token_seconds_sum",
    "wakeserve_generation_time_to_first_token_seconds_count",
)


def chat_body(i: int, max_tokens: int) -> dict[str, Any]:
    """Greedy, exactly ``max_tokens`` tokens (``ignore_eos``), with the usage chunk at the end."""
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": user_text(i)}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
    }


def _read_event(timing: StreamTiming, data: str, at: float) -> None:
    document = orjson.loads(data)
    if "error" in document:
        timing.error = str(document["error"])
        return
    for choice in document.get("choices") or []:
        if choice.get("delta", {}).get("content"):
            timing.deltas.append(at)
        if choice.get("finish_reason"):
            timing.finish_reason = choice["finish_reason"]
    usage = document.get("usage")
    if usage:
        timing.completion_tokens = int(usage["completion_tokens"])


async def one_stream(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], leave_after: int | None
) -> StreamTiming:
    """Send one streaming request; with ``leave_after``, close the connection after that many content deltas."""
    timing = StreamTiming(sent=time.perf_counter())
    leaving = False
    try:
        async with client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                timing.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return timing
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: ") :]
                if data == "[DONE]":
                    break
                _read_event(timing, data, time.perf_counter())
                if leave_after is not None and len(timing.deltas) >= leave_after:
                    leaving = True
                    break
        # Leaving the block before the body's end closes the connection instead of returning it to the pool.
        if leaving:
            timing.left_at = time.perf_counter()
    except httpx.HTTPError as exc:
        timing.error = f"{type(exc).__name__}: {exc}"
    return timing


async def run_phase(
    port: int,
    clients: int,
    rounds: int,
    first_index: int,
    max_tokens: int,
    leavers: Sequence[int] = (),
    leave_after: int = 5,
) -> tuple[list[list[StreamTiming]], float]:
    """``clients`` concurrent clients, each sending ``rounds`` streams back to back, every prompt distinct.
    Clients whose number is in ``leavers`` leave each stream after ``leave_after`` deltas. Returns each
    client's streams and the phase's wall time."""
    url = f"http://{HOST}:{port}/openai/v1/chat/completions"
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0), limits=limits) as client:

        async def loop(c: int) -> list[StreamTiming]:
            leave = leave_after if c in leavers else None
            return [
                await one_stream(client, url, chat_body(first_index + r * clients + c, max_tokens), leave)
                for r in range(rounds)
            ]

        started = time.perf_counter()
        results = await asyncio.gather(*(loop(c) for c in range(clients)))
        return list(results), time.perf_counter() - started


def read_counters(port: int) -> dict[str, float]:
    response = httpx.get(f"http://{HOST}:{port}/metrics", timeout=10)
    response.raise_for_status()
    return counters(response.text, COUNTERS)


def settled_counters(port: int, cancelled_at_least: float, timeout: float = 30.0) -> dict[str, float]:
    """The counters once the engine has retired ``cancelled_at_least`` cancelled requests and runs nothing."""
    deadline = time.monotonic() + timeout
    while True:
        page = httpx.get(f"http://{HOST}:{port}/metrics", timeout=10).text
        values = counters(page, COUNTERS)
        running = counters(page, ["wakeserve_generation_running_sequences"])
        done = values["wakeserve_generation_cancelled_requests_total"] >= cancelled_at_least
        if (done and running["wakeserve_generation_running_sequences"] == 0) or time.monotonic() > deadline:
            return values
        time.sleep(0.1)
