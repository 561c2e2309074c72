"""Aborting a candidate while it loads: the load thread is stopped, the replica stays busy until it has ended,
and the version's artifacts are released only then. In-process, with echo versions whose load can be held."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from core.errors import ConflictError
from functions.contract import Function
from functions.echo.function import Echo
from functions.hotswap.candidate import CandidateSpec
from functions.hotswap.cooperative import StepAside, StoppedError, holding_shared
from tests.functions.hotswap.test_lifecycle import artifact, model, request, settled, started


class HeldLoad(Echo):
    """Echo whose load waits for ``proceed`` (a native wait: no Python call to stop it at meanwhile)."""

    entered = threading.Event()
    proceed = threading.Event()
    loading = 0
    most_at_once = 0
    finished: list[str] = []
    guard = threading.Lock()

    def load(self, artifacts: Path | None) -> None:
        cls = type(self)
        if artifacts is None:  # the first version loads at once
            return
        with cls.guard:
            cls.loading += 1
            cls.most_at_once = max(cls.most_at_once, cls.loading)
        try:
            cls.entered.set()
            cls.proceed.wait(10)
            super().load(artifacts)
            cls.finished.append(self.version)
        finally:
            with cls.guard:
                cls.loading -= 1


@pytest.fixture
def held() -> type[HeldLoad]:
    HeldLoad.entered.clear()
    HeldLoad.proceed.clear()
    HeldLoad.loading = HeldLoad.most_at_once = 0
    HeldLoad.finished = []
    return HeldLoad


async def until(condition: object, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


def test_an_aborted_load_keeps_the_replica_busy_until_its_thread_has_stopped(tmp_path, held):
    async def scenario():
        m = await started(model(tmp_path, function_type=held))
        released: list[Function] = []
        m.lifecycle.release_artifacts = released.append
        m.lifecycle.load_candidate(CandidateSpec(model_uri=artifact(tmp_path, "first")))
        await asyncio.to_thread(held.entered.wait, 10)
        aborted = m.lifecycle.abort()
        await asyncio.sleep(0.05)  # the abort has run through the event loop; the thread is still in load()
        busy_after_abort = m.lifecycle.busy
        with pytest.raises(ConflictError, match="still stopping its load") as refused:
            m.lifecycle.load_candidate(CandidateSpec(model_uri=artifact(tmp_path, "second")))
        released_while_loading = list(released)
        served = (await m.infer(request(1))).model_version
        held.proceed.set()
        await settled(m)
        await until(lambda: released)
        m.lifecycle.load_candidate(CandidateSpec(model_uri=artifact(tmp_path, "third")))
        await settled(m)
        candidate = m.lifecycle.candidate
        await m.close()
        return aborted, busy_after_abort, refused.value, released_while_loading, served, released, candidate

    aborted, busy_after_abort, refused, released_while_loading, served, released, candidate = asyncio.run(scenario())
    assert aborted.state == "aborted" and busy_after_abort is True
    assert refused.status == 409 and served == "1"
    assert released_while_loading == []  # its thread was still using them
    assert len(released) == 1 and isinstance(released[0], HeldLoad)
    # The aborted load stopped at its first Python call after the wait, never finishing; the next load ran alone.
    assert held.finished == ["third"] and held.most_at_once == 1
    assert candidate.version == "third" and candidate.state == "ready"


def test_a_retired_version_releases_its_artifacts_after_its_last_request(tmp_path):
    async def scenario():
        m = await started(model(tmp_path))
        released: list[Function] = []
        m.lifecycle.release_artifacts = released.append
        first = m.lifecycle.active.function
        m.lifecycle.load_candidate(CandidateSpec(model_uri=artifact(tmp_path, "v2")))
        await settled(m)
        kept_while_gated = list(released)
        m.lifecycle.promote()
        await until(lambda: released)
        await m.close()
        return first, kept_while_gated, released

    first, kept_while_gated, released = asyncio.run(scenario())
    assert kept_while_gated == [] and released == [first]


@pytest.mark.parametrize(("shared", "stops"), [(False, True), (True, False)], ids=["free", "holding a shared lock"])
def test_stopped_work_raises_at_its_next_call_outside_a_shared_section(shared, stops):
    calls = []

    def step(i: int) -> int:
        calls.append(i)
        if i == 3:
            step_aside.stop()
        return i

    def work() -> int:
        if shared:
            with holding_shared():
                return sum(step(i) for i in range(10))
        return sum(step(i) for i in range(10))

    step_aside = StepAside(lambda: False)
    if stops:
        with pytest.raises(StoppedError):
            step_aside.run(work)
        assert calls == [0, 1, 2, 3]
    else:
        assert step_aside.run(work) == 45 and len(calls) == 10
