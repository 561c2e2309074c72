"""Clients that send their request slowly (headers or body a few bytes at a time), and what the server did."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import httpx

TRICKLE_EVERY_S = 0.25


@dataclass
class Outcome:
    """What a slow client read before the server closed its connection, and after how long (None: never)."""

    answer: bytes
    closed_after_s: float | None
    reset: bool = False  # closed with bytes of ours still unread: the kernel resets, the answer may be lost


async def _trickle(writer: asyncio.StreamWriter, byte: bytes) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while not writer.is_closing():
            writer.write(byte)
            await writer.drain()
            await asyncio.sleep(TRICKLE_EVERY_S)


async def slow_client(port: int, head: bytes, trickle: bytes, give_up_s: float) -> Outcome:
    """Send ``head`` then ``trickle`` one byte every 0.25 s until the server closes or ``give_up_s`` passes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(head)
    sending = asyncio.create_task(_trickle(writer, trickle))
    try:
        answer = await asyncio.wait_for(reader.read(), give_up_s)
        return Outcome(answer, time.monotonic() - started)
    except ConnectionError:
        return Outcome(b"", time.monotonic() - started, reset=True)
    except TimeoutError:
        return Outcome(b"", None)
    finally:
        sending.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def slow_headers(port: int, path: str, give_up_s: float) -> asyncio.Task[Outcome]:
    head = f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ".encode()
    return asyncio.create_task(slow_client(port, head, b"a", give_up_s))


def slow_body(port: int, path: str, give_up_s: float, headers: str = "") -> asyncio.Task[Outcome]:
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 4096\r\n{headers}\r\n".encode()
    return asyncio.create_task(slow_client(port, head, b" ", give_up_s))


async def neighbour(url: str, until: asyncio.Event, headers: dict[str, str] | None = None) -> list[tuple[int, float]]:
    """GET ``url`` back to back until ``until`` is set; (status, seconds) of each call."""
    answers = []
    async with httpx.AsyncClient(timeout=10, headers=headers) as client:
        while not until.is_set():
            started = time.monotonic()
            response = await client.get(url)
            answers.append((response.status_code, time.monotonic() - started))
    return answers


async def slow_clients_beside_a_neighbour(
    slow: list[asyncio.Task[Outcome]], neighbour_url: str, headers: dict[str, str] | None = None
) -> tuple[list[Outcome], list[tuple[int, float]]]:
    """Run the slow clients to their end while a neighbour keeps calling ``neighbour_url``."""
    done = asyncio.Event()
    calls = asyncio.create_task(neighbour(neighbour_url, done, headers))
    try:
        outcomes = await asyncio.gather(*slow)
    finally:
        done.set()
    return list(outcomes), await calls


def assert_all_timed_out(outcomes: list[Outcome], within_s: float) -> None:
    """Every slow client was closed by the server within ``within_s``, answered 408 unless reset."""
    kept = [o for o in outcomes if o.closed_after_s is None]
    assert kept == [], f"{len(kept)} of {len(outcomes)} slow connections were kept open"
    late = [o.closed_after_s for o in outcomes if o.closed_after_s is not None and o.closed_after_s > within_s]
    assert late == [], f"closed after {late}"
    answered = [o.answer for o in outcomes if not o.reset]
    assert answered, "every connection was reset: no answer to check"
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answered), {a[:40] for a in answered}
    assert all(b'"code":"request_timeout"' in a for a in answered)


def assert_served(calls: list[tuple[int, float]], within_s: float) -> None:
    assert calls, "the neighbour made no call"
    assert {status for status, _ in calls} == {200}, calls
    assert max(seconds for _, seconds in calls) < within_s, max(seconds for _, seconds in calls)
