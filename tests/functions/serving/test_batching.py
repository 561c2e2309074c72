from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from core.errors import ModelError, OverloadedError
from functions.serving.batching import DynamicBatcher, merge, split


def double(inputs):
    if np.any(inputs["x"] < 0):
        raise ValueError("negative input")
    return {"y": inputs["x"] * 2}


def run(coro):
    return asyncio.run(coro)


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Yield to the event loop until ``condition`` holds (the batcher's state moves only when it runs)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the batcher did not reach the expected state"
        await asyncio.sleep(0.001)


@pytest.mark.parametrize(
    ("sizes", "max_batch", "expected_batches"),
    [
        ([1] * 8, 8, [8]),  # all arrive together: one batch
        ([1] * 8, 4, [4, 4]),  # capped by max batch size
        ([3, 3, 3], 4, [3, 3, 3]),  # a request is never split across batches
        ([2, 2, 5], 4, [4, 5]),  # an oversize request runs alone
        ([1] * 5, 1, [1] * 5),  # batching off
    ],
)
def test_requests_are_merged_up_to_the_batch_size(sizes, max_batch, expected_batches):
    observed: list[int] = []

    async def main():
        gate = threading.Event()

        def gated(inputs):
            gate.wait(5)
            return double(inputs)

        with ThreadPoolExecutor(1) as pool:
            batcher = DynamicBatcher(
                gated, pool, max_batch_size=max_batch, max_delay_ms=50, max_queue=64, observe_batch=observed.append
            )
            tasks = [
                asyncio.create_task(batcher.submit({"x": np.full((n, 2), i, dtype=np.float32)}))
                for i, n in enumerate(sizes)
            ]
            await until(lambda: batcher.depth == len(sizes))  # every request is in before the model runs
            gate.set()
            results = await asyncio.gather(*tasks)
            await batcher.close()
        return results

    results = run(main())
    for i, (n, result) in enumerate(zip(sizes, results)):
        np.testing.assert_array_equal(result["y"], np.full((n, 2), 2 * i, dtype=np.float32))
    assert sum(observed) == sum(sizes)
    assert observed == expected_batches


def test_one_bad_request_does_not_fail_its_neighbours():
    async def main():
        with ThreadPoolExecutor(1) as pool:
            batcher = DynamicBatcher(double, pool, max_batch_size=16, max_delay_ms=20, max_queue=16)
            inputs = [np.array([[1.0]]), np.array([[-1.0]]), np.array([[3.0]])]
            results = await asyncio.gather(
                *(batcher.submit({"x": x.astype(np.float32)}) for x in inputs), return_exceptions=True
            )
            await batcher.close()
        return results

    good1, bad, good2 = run(main())
    np.testing.assert_array_equal(good1["y"], [[2.0]])
    np.testing.assert_array_equal(good2["y"], [[6.0]])
    assert isinstance(bad, ModelError)
    assert "negative input" in bad.message


def test_full_queue_is_refused_with_overloaded_and_others_complete():
    async def main():
        release = threading.Event()

        def slow(inputs):
            release.wait(5)
            return double(inputs)

        with ThreadPoolExecutor(1) as pool:
            batcher = DynamicBatcher(slow, pool, max_batch_size=1, max_delay_ms=0, max_queue=2)
            first = asyncio.create_task(batcher.submit({"x": np.ones((1, 1), np.float32)}))
            await until(lambda: batcher.running and batcher.waiting == 0)  # first is running; the queue is empty
            queued = [asyncio.create_task(batcher.submit({"x": np.ones((1, 1), np.float32)})) for _ in range(2)]
            await until(lambda: batcher.waiting == 2)
            with pytest.raises(OverloadedError) as refused:
                await batcher.submit({"x": np.ones((1, 1), np.float32)})
            assert batcher.depth == 3
            release.set()
            done = await asyncio.gather(first, *queued)
            await batcher.close()
        return refused.value, done

    refused, done = run(main())
    assert refused.status == 503 and refused.retryable
    assert "queue is full" in refused.message
    assert all(np.array_equal(d["y"], [[2.0]]) for d in done)


def test_incompatible_shapes_are_not_merged():
    seen: list[tuple[int, ...]] = []

    def record(inputs):
        seen.append(inputs["x"].shape)
        return {"y": inputs["x"]}

    async def main():
        with ThreadPoolExecutor(1) as pool:
            batcher = DynamicBatcher(record, pool, max_batch_size=8, max_delay_ms=20, max_queue=8)
            a = batcher.submit({"x": np.zeros((1, 3), np.float32)})
            b = batcher.submit({"x": np.zeros((1, 4), np.float32)})
            out = await asyncio.gather(a, b)
            await batcher.close()
        return out

    a, b = run(main())
    assert a["y"].shape == (1, 3) and b["y"].shape == (1, 4)
    assert sorted(seen) == [(1, 3), (1, 4)]


@pytest.mark.parametrize(
    ("sizes", "bad_output_rows"),
    [([1, 2, 3], None), ([4], None), ([2, 2], 3)],
)
def test_merge_and_split_round_trip(sizes, bad_output_rows):
    parts = [{"x": np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 100 * i} for i, n in enumerate(sizes)]
    merged = merge(parts)
    assert merged["x"].shape == (sum(sizes), 2)
    if bad_output_rows is None:
        for part, back in zip(parts, split(merged, sizes)):
            np.testing.assert_array_equal(part["x"], back["x"])
    else:
        with pytest.raises(ModelError):
            split({"x": merged["x"][:bad_output_rows]}, sizes)


def test_cancelled_callers_are_skipped():
    calls: list[int] = []

    def count(inputs):
        calls.append(inputs["x"].shape[0])
        return {"y": inputs["x"]}

    async def main():
        with ThreadPoolExecutor(1) as pool:
            batcher = DynamicBatcher(count, pool, max_batch_size=8, max_delay_ms=30, max_queue=8)
            gone = asyncio.create_task(batcher.submit({"x": np.zeros((5, 1), np.float32)}))
            await until(lambda: batcher.waiting == 1)
            gone.cancel()
            kept = await batcher.submit({"x": np.zeros((1, 1), np.float32)})
            await batcher.close()
        return kept

    kept = run(main())
    assert kept["y"].shape == (1, 1)
    assert calls == [1]


def test_sync_requests_go_before_queued_events_and_events_are_capped_while_sync_is_busy():
    from functions.serving.batching import EVENT, SYNC

    order: list[list[float]] = []

    async def main():
        gate = threading.Event()

        def record(inputs):
            gate.wait(5)
            order.append(inputs["x"][:, 0].tolist())
            return {"y": inputs["x"]}

        with ThreadPoolExecutor(1) as pool:
            batcher = DynamicBatcher(record, pool, max_batch_size=8, max_delay_ms=0, max_queue=64, event_share=0.25)
            first = asyncio.create_task(batcher.submit({"x": np.full((1, 1), -1, np.float32)}, SYNC))
            await until(lambda: batcher.running)  # the first batch is on the model (blocked on the gate)
            events = [
                asyncio.create_task(batcher.submit({"x": np.full((1, 1), i, np.float32)}, EVENT)) for i in range(6)
            ]
            await until(lambda: batcher.waiting == 6)  # the events are queued before the calls
            syncs = [
                asyncio.create_task(batcher.submit({"x": np.full((1, 1), 100 + i, np.float32)}, SYNC)) for i in range(3)
            ]
            await until(lambda: batcher.waiting == 9)
            gate.set()
            await asyncio.gather(first, *events, *syncs)
            await batcher.close()

    run(main())
    assert order[0] == [-1]
    # Sync calls first, then at most 2 (25 % of 8) events beside them; the rest follow.
    assert order[1] == [100, 101, 102, 0, 1]
    assert sorted(v for batch in order[2:] for v in batch) == [2, 3, 4, 5]


def test_events_keep_their_share_when_sync_calls_would_fill_every_batch():
    from functions.serving.batching import EVENT, SYNC

    order: list[list[float]] = []

    async def main():
        gate = threading.Event()

        def record(inputs):
            gate.wait(5)
            order.append(inputs["x"][:, 0].tolist())
            return {"y": inputs["x"]}

        with ThreadPoolExecutor(1) as pool:
            batcher = DynamicBatcher(record, pool, max_batch_size=8, max_delay_ms=0, max_queue=64, event_share=0.25)
            first = asyncio.create_task(batcher.submit({"x": np.full((1, 1), -1, np.float32)}, SYNC))
            await until(lambda: batcher.running)
            events = [
                asyncio.create_task(batcher.submit({"x": np.full((1, 1), i, np.float32)}, EVENT)) for i in range(4)
            ]
            syncs = [
                asyncio.create_task(batcher.submit({"x": np.full((1, 1), 100 + i, np.float32)}, SYNC))
                for i in range(12)
            ]
            await until(lambda: batcher.waiting == 16)
            gate.set()
            await asyncio.gather(first, *events, *syncs)
            await batcher.close()

    run(main())
    assert order[1] == [100, 101, 102, 103, 104, 105, 0, 1]  # 2 of 8 rows reserved for waiting events
    assert order[2] == [106, 107, 108, 109, 110, 111, 2, 3]


def test_a_finished_batch_is_handed_over_after_the_next_one_has_started(monkeypatch):
    """With the next batch ready, it starts on the model thread before the finished batch's callers resume."""
    monkeypatch.setattr("functions.serving.batching.START_WAIT_S", 5.0)  # only the start signal can release the results
    order: list[str] = []

    async def main():
        first_running, release_first = threading.Event(), threading.Event()

        def model(inputs):
            label = f"start {int(inputs['x'][0, 0])}"
            order.append(label)
            if label == "start 1":
                first_running.set()
                release_first.wait(5)
            return double(inputs)

        async def call(value):
            result = await batcher.submit({"x": np.full((1, 2), value, dtype=np.float32)})
            order.append(f"result {value}")
            return result

        with ThreadPoolExecutor(1) as pool:
            batcher = DynamicBatcher(model, pool, max_batch_size=1, max_delay_ms=0, max_queue=8)
            first = asyncio.create_task(call(1))
            await asyncio.get_running_loop().run_in_executor(None, first_running.wait, 5)
            second = asyncio.create_task(call(2))
            await until(lambda: batcher.waiting == 1)  # queued behind the running batch
            release_first.set()
            await asyncio.gather(first, second)
            await batcher.close()

    run(main())
    assert order == ["start 1", "start 2", "result 1", "result 2"]


def test_results_are_handed_over_when_the_next_batch_cannot_start():
    """Another job holds the model thread: the finished batch's callers get their results after START_WAIT_S."""

    async def main():
        first_running, release_first, release_blocker = threading.Event(), threading.Event(), threading.Event()

        def model(inputs):
            if inputs["x"][0, 0] == 1:
                first_running.set()
                release_first.wait(5)
            return double(inputs)

        with ThreadPoolExecutor(1) as pool:
            batcher = DynamicBatcher(model, pool, max_batch_size=1, max_delay_ms=0, max_queue=8)
            first = asyncio.create_task(batcher.submit({"x": np.ones((1, 2), dtype=np.float32)}))
            await asyncio.get_running_loop().run_in_executor(None, first_running.wait, 5)
            blocker = pool.submit(release_blocker.wait, 5)  # queued on the model thread ahead of batch 2
            second = asyncio.create_task(batcher.submit({"x": np.full((1, 2), 2, dtype=np.float32)}))
            await until(lambda: batcher.waiting == 1)
            release_first.set()
            result = await asyncio.wait_for(first, 2)
            blocked_meanwhile = not blocker.done()
            release_blocker.set()
            await second
            await batcher.close()
            return result, blocked_meanwhile

    result, blocked_meanwhile = run(main())
    np.testing.assert_array_equal(result["y"], np.full((1, 2), 2, dtype=np.float32))
    assert blocked_meanwhile


@pytest.mark.parametrize(
    ("busy", "timeout_s", "expected"),
    [
        (False, 0.01, True),  # nothing queued: idle at once
        (True, 5.0, True),  # woken when the running batch finishes
        (True, 0.05, False),  # still running when the patience runs out
    ],
)
def test_wait_idle(busy, timeout_s, expected):
    async def main():
        release = threading.Event()

        def model(inputs):
            release.wait(5)
            return double(inputs)

        with ThreadPoolExecutor(1) as pool:
            batcher = DynamicBatcher(model, pool, max_batch_size=4, max_delay_ms=0, max_queue=8)
            call = None
            if busy:
                call = asyncio.create_task(batcher.submit({"x": np.ones((1, 2), dtype=np.float32)}))
                await until(lambda: batcher.running)
                if timeout_s > 1:
                    asyncio.get_running_loop().call_later(0.05, release.set)
            idle = await batcher.wait_idle(timeout_s)
            depth_after = batcher.depth
            release.set()
            if call is not None:
                await call
            await batcher.close()
            return idle, depth_after

    idle, depth_after = run(main())
    assert idle is expected
    assert (depth_after == 0) is expected
