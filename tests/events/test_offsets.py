from __future__ import annotations

import pytest

from events.offsets import OffsetTracker


@pytest.mark.parametrize(
    ("started", "finished", "committable"),
    [
        ([], [], {}),
        ([0, 1, 2], [], {("t", 0): 0}),
        ([0, 1, 2], [1, 2], {("t", 0): 0}),  # 0 still running: nothing past it
        ([0, 1, 2], [0, 2], {("t", 0): 1}),
        ([0, 1, 2], [0, 1, 2], {("t", 0): 3}),
        ([5, 6], [5], {("t", 0): 6}),  # offsets need not start at 0
    ],
)
@pytest.mark.parametrize("whole_fetch", [False, True], ids=["one_by_one", "started_many"])
def test_commit_watermark(started, finished, committable, whole_fetch):
    tracker = OffsetTracker()
    if whole_fetch:
        tracker.started_many([("t", 0, o) for o in started])
    else:
        for o in started:
            tracker.started("t", 0, o)
    for o in finished:
        tracker.finished("t", 0, o)
    assert tracker.committable() == committable
    assert tracker.in_flight == len(started) - len(finished)


def test_nothing_is_committed_twice_and_revoked_partitions_are_forgotten():
    tracker = OffsetTracker()
    tracker.started("t", 0, 0)
    tracker.started("t", 1, 0)
    tracker.finished("t", 0, 0)
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == {}
    tracker.finished("t", 1, 0)
    assert tracker.committable() == {("t", 1): 1}
    tracker.forget([("t", 1)])
    assert tracker.committable() == {} and tracker.in_flight == 0
