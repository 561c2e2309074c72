from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from core.processes import ChildProcess
from wakeserve.supervision import Supervised, Supervisor, backoff


@pytest.mark.parametrize(
    ("recent", "wait"),
    [(0, 0.0), (1, 0.0), (2, 1.0), (3, 2.0), (4, 4.0), (6, 16.0), (7, 30.0), (20, 30.0)],
)
def test_backoff(recent: int, wait: float) -> None:
    assert backoff(recent) == wait


def test_crashes_older_than_a_minute_do_not_count() -> None:
    part = Supervised("x", lambda: None, None)  # type: ignore[arg-type, return-value]
    part.crashed(0.0)
    part.crashed(30.0)
    assert part.not_before == 31.0
    part.crashed(80.0)  # the one at 0 s has left the window
    assert part.recent_crashes == [30.0, 80.0] and part.not_before == 81.0


def _sleeper(tmp: Path) -> ChildProcess:
    return ChildProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], log_path=tmp / "s.log")


def test_a_killed_child_is_started_again_and_all_stop_at_the_end(tmp_path: Path) -> None:
    supervisor = Supervisor(interval=0.05)
    first = _sleeper(tmp_path)
    supervisor.add("sleeper", lambda: _sleeper(tmp_path), first)

    async def go() -> dict[str, object]:
        stop = asyncio.Event()
        watching = asyncio.create_task(supervisor.watch(stop))
        try:
            first.signal(9)
            async with asyncio.timeout(20):
                while supervisor.status()["sleeper"]["restarts"] < 1:
                    await asyncio.sleep(0.05)
            return supervisor.status()["sleeper"]
        finally:
            stop.set()
            await watching
            await supervisor.stop_all()

    status = asyncio.run(go())
    assert status["alive"] and status["pid"] != first.pid
    assert not first.alive() and not supervisor.parts[0].child.alive()


def test_a_start_that_fails_counts_as_a_crash_and_waits_for_the_backoff(tmp_path: Path) -> None:
    attempts: list[float] = []

    def failing() -> ChildProcess:
        attempts.append(time.monotonic())
        raise RuntimeError("port taken")

    supervisor = Supervisor(interval=0.05)
    child = _sleeper(tmp_path)
    supervisor.add("flaky", failing, child)
    child.signal(9)

    async def go() -> None:
        stop = asyncio.Event()
        watching = asyncio.create_task(supervisor.watch(stop))
        try:
            async with asyncio.timeout(10):
                while not attempts:
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await watching
            await supervisor.stop_all()

    asyncio.run(go())
    part = supervisor.parts[0]
    # The exit and the failed start are two crashes within a minute: the next try waits a second.
    assert len(part.recent_crashes) == 2
    assert part.not_before >= attempts[0] + 1.0 - 0.01
    assert part.restarts == 0
