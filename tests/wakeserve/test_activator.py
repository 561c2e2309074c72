"""The activator's routing and holding rules, on a pool whose replicas are plain records (no processes)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest

from core.errors import OverloadedError, UnknownModelError
from core.processes import ChildProcess
from wakeserve.activator import Activator
from wakeserve.pool import Replica, ReplicaPool, State


def record(index: int, state: State, inflight: int = 0) -> Replica:
    return Replica(
        "f", index, 1000 + index, process=cast(ChildProcess, None), started=0.0, state=state, inflight=inflight
    )


def make_pool(states: list[tuple[State, int]]) -> ReplicaPool:
    pool = ReplicaPool("f", lambda port: [], env={}, log_dir=Path("/nonexistent"), client=None)  # type: ignore[arg-type]
    for index, (state, inflight) in enumerate(states):
        pool.replicas.append(record(index, state, inflight))
    return pool


@pytest.mark.parametrize(
    ("states", "limit", "expected"),
    [
        pytest.param([], 0, None, id="none"),
        pytest.param([(State.STARTING, 0)], 0, None, id="starting-takes-no-traffic"),
        pytest.param([(State.DRAINING, 0), (State.READY, 5)], 0, 1, id="draining-takes-no-traffic"),
        pytest.param([(State.READY, 3), (State.READY, 1), (State.READY, 2)], 0, 1, id="least-loaded"),
        pytest.param([(State.READY, 4), (State.READY, 4)], 4, None, id="all-at-container-concurrency"),
        pytest.param([(State.READY, 4), (State.READY, 3)], 4, 1, id="room-under-limit"),
    ],
)
def test_pick(states: list[tuple[State, int]], limit: int, expected: int | None) -> None:
    chosen = make_pool(states).pick(limit)
    assert (chosen.index if chosen else None) == expected


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_request_at_zero_is_held_pokes_the_autoscaler_and_goes_to_the_first_ready_replica() -> None:
    async def scenario() -> tuple[list[str], int, int]:
        pool = make_pool([])
        pokes: list[str] = []
        activator = Activator({"f": pool}, pokes.append, hold_timeout_s=5)

        async def request() -> int:
            async with activator.replica("f") as replica:
                return replica.index

        task = asyncio.create_task(request())
        await asyncio.sleep(0.05)
        held = activator.traffic["f"].held
        assert activator.concurrency("f") == 1  # held requests count as concurrency, as at Knative's activator
        pool.replicas.append(record(7, State.READY))
        await pool.notify()
        return pokes, held, await asyncio.wait_for(task, 2)

    pokes, held, index = run(scenario())
    assert pokes == ["f"] and held == 1 and index == 7


def test_a_held_request_times_out_with_a_retryable_503() -> None:
    async def scenario() -> Activator:
        activator = Activator({"f": make_pool([])}, lambda f: None, hold_timeout_s=0.2)
        with pytest.raises(OverloadedError, match=r"no replica of .f. became ready within 0\.2s") as info:
            async with activator.replica("f"):
                pass
        assert info.value.status == 503 and info.value.retryable
        return activator

    traffic = run(scenario()).traffic["f"]
    assert (traffic.timeouts, traffic.held, traffic.inflight) == (1, 0, 0)


def test_the_hold_queue_is_bounded() -> None:
    async def scenario() -> tuple[Activator, list[Any]]:
        activator = Activator({"f": make_pool([])}, lambda f: None, hold_timeout_s=0.5, max_held=3)

        async def request() -> None:
            async with activator.replica("f"):
                pass

        results = await asyncio.gather(*(request() for _ in range(5)), return_exceptions=True)
        return activator, results

    activator, results = run(scenario())
    messages = sorted(str(r) for r in results)
    assert sum("already waiting" in m for m in messages) == 2
    assert sum("became ready" in m for m in messages) == 3
    assert activator.traffic["f"].rejected == 2


def test_unknown_function_is_404() -> None:
    async def scenario() -> None:
        activator = Activator({"f": make_pool([])}, lambda f: None)
        with pytest.raises(UnknownModelError, match="'g' is not served here; known: f"):
            async with activator.replica("g"):
                pass

    run(scenario())


def test_inflight_is_counted_per_replica_while_the_request_runs() -> None:
    async def scenario() -> tuple[int, int]:
        pool = make_pool([(State.READY, 0)])
        activator = Activator({"f": pool}, lambda f: None)
        async with activator.replica("f") as replica:
            during = replica.inflight
        return during, pool.replicas[0].inflight

    assert run(scenario()) == (1, 0)
