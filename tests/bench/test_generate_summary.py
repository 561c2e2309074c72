from __future__ import annotations

from typing import Any

import pytest

from bench.generate_summary import (
    StreamTiming,
    adjacent_ratios,
    cancellation_windows,
    counters,
    goals,
    histogram_mean,
    percentile,
    phase_summary,
    whole_rate,
    window_rate,
)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        pytest.param([], 50, None, id="empty"),
        pytest.param([7.0], 99, 7.0, id="one value"),
        pytest.param([3.0, 1.0, 2.0], 50, 2.0, id="median of unsorted"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 50, 2.5, id="interpolated median"),
        pytest.param([float(i) for i in range(1, 101)], 99, 99.01, id="p99 of 1..100"),
        pytest.param([1.0, 10.0], 0, 1.0, id="p0 is the minimum"),
        pytest.param([1.0, 10.0], 100, 10.0, id="p100 is the maximum"),
    ],
)
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def stream(sent: float, deltas: list[float], tokens: int | None = 64, **extra: Any) -> StreamTiming:
    return StreamTiming(sent=sent, deltas=deltas, completion_tokens=tokens, **extra)


@pytest.mark.parametrize(
    ("streams", "wall", "expected"),
    [
        pytest.param(
            [stream(0.0, [0.1, 0.2, 0.4]), stream(0.0, [0.3, 0.4, 0.5])],
            2.0,
            {
                "completed": 2,
                "tokens": 128,
                "tokens_per_s": 64.0,
                "ttft_p50_ms": 200.0,
                "inter_token_p99_ms": pytest.approx(197.0),  # gaps 100, 200, 100, 100 ms
                "errors": [],
                "wrong_token_counts": [],
            },
            id="two whole streams",
        ),
        pytest.param(
            [stream(0.0, [0.1], tokens=None, error="HTTP 503"), stream(1.0, [1.5, 1.6], tokens=63)],
            1.0,
            {"completed": 1, "tokens": 63, "errors": ["HTTP 503"], "wrong_token_counts": [63]},
            id="a failure and a short stream are reported",
        ),
        pytest.param(
            [stream(0.0, [], tokens=None)],
            1.0,
            {"completed": 0, "tokens": 0, "ttft_p50_ms": None, "inter_token_p99_ms": None},
            id="no delta at all",
        ),
    ],
)
def test_phase_summary(streams: list[StreamTiming], wall: float, expected: dict[str, Any]) -> None:
    summary = phase_summary(streams, wall, expected_tokens=64)
    assert {k: summary[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("deltas", "start", "end", "expected"),
    [
        pytest.param([[1.0, 2.0, 3.0]], 1.0, 3.0, 1.0, id="start excluded, end included"),
        pytest.param([[1.5], [1.6, 2.5]], 1.0, 2.0, 2.0, id="summed over streams"),
        pytest.param([[1.0]], 2.0, 2.0, None, id="empty window"),
    ],
)
def test_window_rate(deltas: list[list[float]], start: float, end: float, expected: float | None) -> None:
    assert window_rate([stream(0.0, d) for d in deltas], start, end) == expected


@pytest.mark.parametrize(
    ("stayers", "leavers", "expected"),
    [
        pytest.param(
            [[1.0, 1.5, 2.0, 2.25, 2.5, 2.75, 3.0]],
            [2.0, 1.8],
            {"last_left_s": 1.0, "during_per_s": 2.0, "after_per_s": 4.0},
            id="faster once the others left",
        ),
        pytest.param(
            [[1.0, 2.0]],
            [None],
            {"last_left_s": None, "during_per_s": None, "after_per_s": None},
            id="nobody left",
        ),
    ],
)
def test_cancellation_windows(
    stayers: list[list[float]], leavers: list[float | None], expected: dict[str, float | None]
) -> None:
    gone = [stream(0.0, [0.5], tokens=None, left_at=at) for at in leavers]
    assert cancellation_windows([stream(0.0, d) for d in stayers], gone) == expected


@pytest.mark.parametrize(
    ("deltas", "expected"),
    [
        pytest.param([[1.0, 2.0], [1.5, 3.0]], 1.5, id="first to last delta"),
        pytest.param([[1.0]], None, id="one delta has no rate"),
    ],
)
def test_whole_rate(deltas: list[list[float]], expected: float | None) -> None:
    assert whole_rate([stream(0.0, d) for d in deltas]) == expected


PAGE = """\
# HELP wakeserve_generation_tokens_total Tokens generated (sampled).
# TYPE wakeserve_generation_tokens_total counter
wakeserve_generation_tokens_total{model="generator"} 120.0
wakeserve_generation_tokens_total{model="other"} 5.0
# HELP wakeserve_generation_time_to_first_token_seconds Arrival to first token.
# TYPE wakeserve_generation_time_to_first_token_seconds histogram
wakeserve_generation_time_to_first_token_seconds_bucket{le="+Inf",model="generator"} 4.0
wakeserve_generation_time_to_first_token_seconds_count{model="generator"} 4.0
wakeserve_generation_time_to_first_token_seconds_sum{model="generator"} 0.5
"""


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        pytest.param(["wakeserve_generation_tokens_total"], {"wakeserve_generation_tokens_total": 125.0}, id="summed"),
        pytest.param(["absent_total"], {"absent_total": 0.0}, id="absent is zero"),
        pytest.param(
            ["wakeserve_generation_time_to_first_token_seconds_sum"],
            {"wakeserve_generation_time_to_first_token_seconds_sum": 0.5},
            id="histogram sum",
        ),
    ],
)
def test_counters(names: list[str], expected: dict[str, float]) -> None:
    assert counters(PAGE, names) == expected


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param((0.5, 4.0), (1.1, 7.0), 0.2, id="mean of the new observations"),
        pytest.param((0.5, 4.0), (0.5, 4.0), None, id="nothing observed"),
    ],
)
def test_histogram_mean(before: tuple[float, float], after: tuple[float, float], expected: float | None) -> None:
    def reading(values: tuple[float, float]) -> dict[str, float]:
        return {"h_sum": values[0], "h_count": values[1]}

    assert histogram_mean(reading(before), reading(after), "h") == pytest.approx(expected)


@pytest.mark.parametrize(
    ("served", "raw", "expected"),
    [
        pytest.param([90.0], [100.0, 80.0], [1.0], id="one round between two raw runs"),
        pytest.param([50.0, 60.0], [100.0, 100.0, 20.0], [0.5, 1.0], id="each round its own neighbours"),
    ],
)
def test_adjacent_ratios(served: list[float], raw: list[float], expected: list[float]) -> None:
    assert adjacent_ratios(served, raw) == pytest.approx(expected)


def test_adjacent_ratios_needs_a_raw_run_either_side() -> None:
    with pytest.raises(ValueError, match="need 2 raw runs"):
        adjacent_ratios([1.0], [1.0])


@pytest.mark.parametrize(
    ("numbers", "passed"),
    [
        pytest.param(
            {"throughput_ratio": 0.8, "ttft_p50_ms": 100.0, "raw_prefill_ms": 85.0, "tokens_after_cancel": 8.0},
            {"served_16_vs_raw_batch_16": True, "ttft_p50_1_stream_ms": True, "tokens_after_cancel": True},
            id="all exactly at their bound",
        ),
        pytest.param(
            {"throughput_ratio": 0.79, "ttft_p50_ms": 100.1, "raw_prefill_ms": 85.0, "tokens_after_cancel": 9.0},
            {"served_16_vs_raw_batch_16": False, "ttft_p50_1_stream_ms": False, "tokens_after_cancel": False},
            id="all just past their bound",
        ),
        pytest.param(
            {"throughput_ratio": None, "ttft_p50_ms": None, "raw_prefill_ms": 85.0, "tokens_after_cancel": 0.0},
            {"served_16_vs_raw_batch_16": False, "ttft_p50_1_stream_ms": False, "tokens_after_cancel": True},
            id="a missing figure fails its goal",
        ),
    ],
)
def test_goals(numbers: dict[str, Any], passed: dict[str, bool]) -> None:
    result = goals(**numbers, cancelled_sequences=8)
    assert {name: verdict["passed"] for name, verdict in result.items()} == passed
    assert result["ttft_p50_1_stream_ms"]["target"] == pytest.approx(numbers["raw_prefill_ms"] + 15.0)
