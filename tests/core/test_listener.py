"""``core.listener`` on a real uvicorn server on loopback: the connection cap, header size and deadlines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from core.listener import ListenerLimits, server_config
from core.processes import free_port
from tests.support.slow_clients import assert_all_timed_out, assert_served, slow_body, slow_headers


async def ok(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@contextlib.asynccontextmanager
async def serving(limits: ListenerLimits) -> AsyncIterator[int]:
    port = free_port()
    server = uvicorn.Server(server_config(ok, limits, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await task


async def raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def test_connections_past_the_cap_are_answered_503_and_the_rest_still_served() -> None:
    async def scenario() -> tuple[bytes, int]:
        async with serving(ListenerLimits(max_connections=4)) as port:
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
            refused = await raw(port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            for _, writer in idle:
                writer.close()
            async with httpx.AsyncClient() as client:
                for _ in range(100):  # the server sees the idle ones go on its next loop turns
                    status = (await client.get(f"http://127.0.0.1:{port}/")).status_code
                    if status == 200:
                        break
            return refused, status

    refused, later = asyncio.run(scenario())
    assert refused.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in refused
    assert b'"code":"overloaded"' in refused and b"over 4 open connections" in refused
    assert later == 200


@pytest.mark.parametrize(("header_bytes", "status"), [(1000, b"200"), (5000, b"431")], ids=["within", "over"])
def test_headers_sent_over_several_reads_are_capped(header_bytes: int, status: bytes) -> None:
    async def scenario() -> bytes:
        async with serving(ListenerLimits(max_header_bytes=4096)) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n")
            first = b""
            for _ in range(header_bytes // 500):
                writer.write(b"x-part: " + b"a" * 490 + b"\r\n")
                # Separate reads on the server, as a client dribbling headers makes; stop once answered, since
                # writing on would only make the closed connection reset.
                with contextlib.suppress(TimeoutError):
                    first = await asyncio.wait_for(reader.read(1), 0.05)
                if first:
                    break
            else:
                writer.write(b"connection: close\r\n\r\n")
            try:
                return first + await asyncio.wait_for(reader.read(), 5)
            finally:
                writer.close()

    answer = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:60]
    if status == b"431":
        assert b"request headers are over 4096 bytes" in answer


def test_slow_headers_and_bodies_time_out_while_a_neighbour_is_served() -> None:
    limits = ListenerLimits(header_timeout_s=0.5, body_timeout_s=0.5)

    async def scenario() -> tuple[list[Any], list[tuple[int, float]]]:
        from tests.support.slow_clients import slow_clients_beside_a_neighbour

        async with serving(limits) as port:
            slow = [slow_headers(port, "/", 5) for _ in range(30)] + [slow_body(port, "/", 5) for _ in range(30)]
            return await slow_clients_beside_a_neighbour(slow, f"http://127.0.0.1:{port}/")

    outcomes, calls = asyncio.run(scenario())
    assert_all_timed_out(outcomes, 3.0)
    assert_served(calls, 2.0)


def test_a_keep_alive_connection_gets_a_fresh_header_deadline_per_request() -> None:
    async def scenario() -> list[bytes]:
        async with serving(ListenerLimits(header_timeout_s=0.5)) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answers = []
            for _ in range(3):  # together longer than one deadline; each request on time
                writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                answers.append(await asyncio.wait_for(reader.readuntil(b"ok"), 5))
                await asyncio.sleep(0.3)
            writer.close()
            return answers

    assert all(a.startswith(b"HTTP/1.1 200 ") for a in asyncio.run(scenario()))
