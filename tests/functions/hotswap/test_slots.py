"""Slots (pure parts): the canary split, per-version statistics, slot states and what a slot reports."""

from __future__ import annotations

import asyncio

import pytest

from functions.echo.function import Echo
from functions.hotswap.documents import SlotDocument, SlotState
from functions.hotswap.gates import GateResult
from functions.hotswap.slots import BatchingConfig, CanarySplit, Slot, VersionStats

BATCHING = BatchingConfig(max_batch_size=4, max_delay_ms=0, max_queue=8)


@pytest.mark.parametrize(
    ("percent", "calls", "taken_at"),
    [
        (0, 10, []),
        (100, 4, [0, 1, 2, 3]),
        (50, 6, [1, 3, 5]),
        (25, 8, [3, 7]),
        (1, 200, [99, 199]),
        (33.5, 6, [2, 5]),
    ],
)
def test_the_canary_split_takes_evenly_spaced_calls(percent: float, calls: int, taken_at: list[int]) -> None:
    split = CanarySplit()
    split.set(percent)
    assert [i for i in range(calls) if split.take()] == taken_at


def test_setting_the_split_again_starts_counting_afresh() -> None:
    split = CanarySplit()
    split.set(50)
    assert split.take() is False
    split.set(50)
    assert split.take() is False and split.take() is True


@pytest.mark.parametrize("percent", [-1, 100.5, 1000])
def test_the_canary_split_refuses_a_share_outside_0_to_100(percent: float) -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        CanarySplit().set(percent)


@pytest.mark.parametrize(
    ("records", "after", "samples", "counts"),
    [
        ([], 0, [], {}),
        ([("v1", 0.01, True)], 0, [(1, "v1", 0.01, True)], {"v1": (1, 0)}),
        (
            [("v1", 0.01, True), ("v2", 0.0200004, False), ("v1", 0.03, True)],
            1,
            [(2, "v2", 0.02, False), (3, "v1", 0.03, True)],  # latencies rounded to the microsecond
            {"v1": (2, 0), "v2": (1, 1)},
        ),
        ([("v1", 0.01, False)] * 3, 3, [], {"v1": (3, 3)}),
    ],
)
def test_version_stats_count_and_list_samples_after_a_sequence_number(
    records: list[tuple[str, float, bool]],
    after: int,
    samples: list[tuple[int, str, float, bool]],
    counts: dict[str, tuple[int, int]],
) -> None:
    stats = VersionStats()
    for version, latency, ok in records:
        stats.record(version, latency, ok)
    assert stats.since(after) == samples
    assert {v: (c.requests, c.errors) for v, c in stats.versions().items()} == counts
    assert stats.last == len(records)


def test_version_stats_keep_only_the_newest_samples_but_count_every_request() -> None:
    stats = VersionStats(capacity=3)
    for i in range(5):
        stats.record("v1", i / 1000, True)
    assert [seq for seq, *_ in stats.since(0)] == [3, 4, 5]
    assert stats.versions()["v1"].requests == 5
    assert len(stats.since(0, limit=2)) == 2


@pytest.mark.parametrize(
    ("state", "busy"),
    [
        (SlotState.LOADING, True),
        (SlotState.GATING, True),
        (SlotState.READY, False),
        (SlotState.ACTIVE, False),
        (SlotState.RETIRING, False),
        (SlotState.RETIRED, False),
        (SlotState.FAILED, False),
        (SlotState.ABORTED, False),
    ],
)
def test_only_loading_and_gating_are_busy(state: SlotState, busy: bool) -> None:
    assert state.busy is busy


def test_slot_states_are_their_wire_strings() -> None:
    assert [s.value for s in SlotState] == [
        "loading",
        "gating",
        "ready",
        "active",
        "retiring",
        "retired",
        "failed",
        "aborted",
    ]
    assert SlotState("ready") is SlotState.READY and SlotState.READY == "ready"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (SlotState.RETIRING, SlotState.RETIRED),  # a replaced version is retired once released
        (SlotState.ACTIVE, SlotState.ACTIVE),
        (SlotState.FAILED, SlotState.FAILED),
        (SlotState.ABORTED, SlotState.ABORTED),
        (SlotState.READY, SlotState.READY),
    ],
)
def test_releasing_a_slot_retires_only_a_retiring_one(before: SlotState, after: SlotState) -> None:
    async def scenario() -> Slot:
        slot = Slot(Echo(), BATCHING, role="test", source="packaged")
        slot.state = before
        await slot.release(1.0)
        await slot.release(1.0)  # a second release is a no-op
        return slot

    slot = asyncio.run(scenario())
    assert slot.state is after and slot.released
    assert slot.function.name == "echo" and not hasattr(slot.function, "infer")


def test_release_waits_for_the_requests_bound_to_the_slot() -> None:
    async def scenario() -> tuple[bool, bool]:
        slot = Slot(Echo(), BATCHING, role="test", source="packaged")
        entered, finished = asyncio.Event(), asyncio.Event()

        async def request() -> None:
            with slot.bound():
                entered.set()
                await finished.wait()

        task = asyncio.create_task(request())
        await entered.wait()
        releasing = asyncio.create_task(slot.release(5.0))
        done, _ = await asyncio.wait({releasing}, timeout=0.05)
        waited = not done
        finished.set()
        await asyncio.gather(task, releasing)
        return waited, slot.inflight == 0

    assert asyncio.run(scenario()) == (True, True)


def test_a_slot_describes_itself_as_the_shared_document() -> None:
    async def scenario() -> SlotDocument:
        slot = Slot(Echo(), BATCHING, role="test", source="s3://models/echo/v2")
        slot.state, slot.load_s, slot.error = SlotState.FAILED, 0.25, "golden: differs"
        slot.digest = "0123456789abcdef"
        slot.gates.append(GateResult("golden", False, "differs"))
        doc = slot.describe()
        await slot.release(0)
        return doc

    doc = asyncio.run(scenario())
    assert doc.model_dump(mode="json") == {
        "version": "1",
        "digest": "0123456789abcdef",
        "source": "s3://models/echo/v2",
        "state": "failed",
        "inflight": 0,
        "queued": 0,
        "load_s": 0.25,
        "memory_mb": None,
        "error": "golden: differs",
        "released": False,
        "gates": [{"name": "golden", "passed": False, "detail": "differs", "skipped": False}],
    }
