"""Slow clients on every listener: each is answered 408 and closed in time while a neighbour is still served.

Each listener gets a bounded number of clients that send their headers, or their body, one byte every 0.25 s,
with the header and body timeouts set to 1 s: a replica's inference port and admin listener (a real replica
process), the gateway of a real ``wakeserve up``, and the standalone ingress's server.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, cast

import pytest
from kafka import KafkaProducer

from core.processes import free_port
from events import ingress
from events.settings import EventSettings
from tests.support.replicas import start_replica
from tests.support.slow_clients import (
    assert_all_timed_out,
    assert_served,
    slow_body,
    slow_clients_beside_a_neighbour,
    slow_headers,
)
from tests.support.up import start_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST_TIMEOUTS = {"WAKESERVE_HEADER_TIMEOUT_S": "1", "WAKESERVE_BODY_TIMEOUT_S": "1"}
GIVE_UP_S = 8.0  # far past the timeouts: a connection still open then was kept
CLOSED_WITHIN_S = 4.0  # the 1 s timeout, plus the scheduling slack of a loaded machine
NEIGHBOUR_WITHIN_S = 2.0


def test_a_replica_times_out_slow_clients_on_both_listeners(tmp_path: Path) -> None:
    replica = start_replica("echo", tmp_path, env=FAST_TIMEOUTS)
    try:

        async def scenario() -> tuple[list[Any], list[tuple[int, float]]]:
            slow = [slow_headers(replica.http_port, "/v2/health/ready", GIVE_UP_S) for _ in range(80)]
            slow += [slow_body(replica.http_port, "/v2/models/echo/infer", GIVE_UP_S) for _ in range(80)]
            slow += [slow_headers(replica.admin_port, "/wakeserve/startup", GIVE_UP_S) for _ in range(20)]
            slow += [slow_body(replica.admin_port, "/wakeserve/models/echo/slots", GIVE_UP_S) for _ in range(20)]
            return await slow_clients_beside_a_neighbour(slow, f"{replica.url}/v2/health/ready")

        outcomes, calls = asyncio.run(scenario())
        assert_all_timed_out(outcomes, CLOSED_WITHIN_S)
        assert_served(calls, NEIGHBOUR_WITHIN_S)
    finally:
        replica.process.stop()


def test_the_gateway_times_out_slow_clients(tmp_path: Path) -> None:
    up = start_up(tmp_path, token="gateway-token-for-tests", env=FAST_TIMEOUTS)
    port = int(up.url.rsplit(":", 1)[1])
    auth = "authorization: Bearer gateway-token-for-tests\r\n"
    try:

        async def scenario() -> tuple[list[Any], list[tuple[int, float]]]:
            slow = [slow_headers(port, "/v2/models/echo/infer", GIVE_UP_S) for _ in range(50)]
            slow += [slow_body(port, "/events", GIVE_UP_S, headers=auth) for _ in range(50)]
            return await slow_clients_beside_a_neighbour(slow, f"{up.url}/wakeserve/status", up.headers)

        outcomes, calls = asyncio.run(scenario())
        assert_all_timed_out(outcomes, CLOSED_WITHIN_S)
        assert_served(calls, NEIGHBOUR_WITHIN_S)
    finally:
        up.process.stop()


def test_the_standalone_ingress_times_out_slow_clients() -> None:
    settings = EventSettings(header_timeout_s=1, body_timeout_s=1)
    port = free_port()
    # No event reaches the producer: every slow client is cut off before its body is complete.
    server = ingress.server(
        ingress.Ingress(cast(KafkaProducer, None), settings, frozenset({"echo"})), "127.0.0.1", port
    )

    async def scenario() -> tuple[list[Any], list[tuple[int, float]]]:
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                assert not serving.done(), "the ingress did not start"
                await asyncio.sleep(0.01)
            slow = [slow_headers(port, "/healthz", GIVE_UP_S) for _ in range(50)]
            slow += [slow_body(port, "/events", GIVE_UP_S) for _ in range(50)]
            return await slow_clients_beside_a_neighbour(slow, f"http://127.0.0.1:{port}/healthz")
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await serving

    outcomes, calls = asyncio.run(scenario())
    assert_all_timed_out(outcomes, CLOSED_WITHIN_S)
    assert_served(calls, NEIGHBOUR_WITHIN_S)
