"""Pure arithmetic of the generation benchmark: what one stream saw, a phase's summary, the cancellation
windows, counters read from a Prometheus page, and the goals. No I/O here, so it is tested with tables."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class StreamTiming:
    """One SSE stream as its client saw it; times are ``perf_counter`` seconds."""

    sent: float
    deltas: list[float] = field(default_factory=list)  # arrival of each non-empty content delta
    completion_tokens: int | None = None  # from the usage chunk; None when the stream did not end normally
    finish_reason: str | None = None
    error: str | None = None
    left_at: float | None = None  # when the client closed the connection on purpose

    @property
    def ttft(self) -> float | None:
        return self.deltas[0] - self.sent if self.deltas else None

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.deltas, self.deltas[1:], strict=False)]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def phase_summary(streams: Sequence[StreamTiming], wall_s: float, expected_tokens: int) -> dict[str, Any]:
    """Tokens/s (usage completion tokens over the phase's wall time), TTFT and inter-token percentiles, and
    the streams that failed or did not produce exactly ``expected_tokens``."""
    ended = [s for s in streams if s.error is None and s.completion_tokens is not None]
    ttfts = [t for s in streams if (t := s.ttft) is not None]
    gaps = [g for s in streams for g in s.gaps()]
    tokens = sum(s.completion_tokens or 0 for s in ended)
    return {
        "streams": len(streams),
        "completed": len(ended),
        "errors": sorted({s.error for s in streams if s.error is not None}),
        "wrong_token_counts": sorted(
            {s.completion_tokens for s in ended if s.completion_tokens != expected_tokens}, key=lambda n: n or 0
        ),
        "tokens": tokens,
        "wall_s": wall_s,
        "tokens_per_s": tokens / wall_s if wall_s > 0 else 0.0,
        "ttft_p50_ms": _ms(percentile(ttfts, 50)),
        "ttft_p99_ms": _ms(percentile(ttfts, 99)),
        "inter_token_p50_ms": _ms(percentile(gaps, 50)),
        "inter_token_p99_ms": _ms(percentile(gaps, 99)),
    }


def window_rate(streams: Iterable[StreamTiming], start: float, end: float) -> float | None:
    """Content deltas per second that ``streams`` received in ``(start, end]``; None for an empty window."""
    if end <= start:
        return None
    count = sum(1 for s in streams for t in s.deltas if start < t <= end)
    return count / (end - start)


def cancellation_windows(stayers: Sequence[StreamTiming], leavers: Sequence[StreamTiming]) -> dict[str, Any]:
    """The stayers' delta rate while the others were still there (their first delta → the last leaver gone)
    and after (→ the stayers' last delta)."""
    gone = max((s.left_at for s in leavers if s.left_at is not None), default=None)
    firsts = [s.deltas[0] for s in stayers if s.deltas]
    lasts = [s.deltas[-1] for s in stayers if s.deltas]
    if gone is None or not firsts:
        return {"last_left_s": None, "during_per_s": None, "after_per_s": None}
    begin = min(firsts)
    return {
        "last_left_s": gone - begin,
        "during_per_s": window_rate(stayers, begin, gone),
        "after_per_s": window_rate(stayers, gone, max(lasts)),
    }


def whole_rate(streams: Sequence[StreamTiming]) -> float | None:
    """Content deltas per second of ``streams`` from their first delta to their last."""
    times = [t for s in streams for t in s.deltas]
    if len(times) < 2:
        return None
    return (len(times) - 1) / (max(times) - min(times))


def counters(page: str, names: Iterable[str]) -> dict[str, float]:
    """The value of each counter sample in ``names`` (e.g. ``wakeserve_generation_tokens_total``), summed over
    labels; 0 when absent."""
    wanted = {name: 0.0 for name in names}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name in wanted:
                wanted[sample.name] += sample.value
    return wanted


def histogram_mean(before: dict[str, float], after: dict[str, float], base: str) -> float | None:
    """The mean of the observations a histogram ``base`` took between two readings; None if it took none."""
    count = after[f"{base}_count"] - before[f"{base}_count"]
    return (after[f"{base}_sum"] - before[f"{base}_sum"]) / count if count > 0 else None


def adjacent_ratios(served: Sequence[float], raw: Sequence[float]) -> list[float]:
    """Each round's served figure over the mean of the raw figures measured either side of it
    (``raw`` has one more entry than ``served``: raw, served, raw, served, ..., raw)."""
    if len(raw) != len(served) + 1:
        raise ValueError(f"{len(served)} served rounds need {len(served) + 1} raw runs, not {len(raw)}")
    return [s / ((raw[i] + raw[i + 1]) / 2) for i, s in enumerate(served)]


def goal(value: float | None, target: float, at_most: bool, **numbers: Any) -> dict[str, Any]:
    passed = value is not None and (value <= target if at_most else value >= target)
    return {"value": value, "target": target, "passed": passed, **numbers}


def goals(
    *,
    throughput_ratio: float | None,
    ttft_p50_ms: float | None,
    raw_prefill_ms: float,
    tokens_after_cancel: float,
    cancelled_sequences: int,
    ttft_margin_ms: float = 15.0,
    throughput_target: float = 0.8,
) -> dict[str, Any]:
    """The three goals: served 16-stream throughput against raw static batch 16; TTFT p50 at one stream
    against the raw prefill plus a margin; tokens computed after a cancel, at most one step per sequence."""
    return {
        "served_16_vs_raw_batch_16": goal(throughput_ratio, throughput_target, at_most=False),
        "ttft_p50_1_stream_ms": goal(
            ttft_p50_ms, raw_prefill_ms + ttft_margin_ms, at_most=True, raw_prefill_ms=raw_prefill_ms
        ),
        "tokens_after_cancel": goal(
            tokens_after_cancel, float(cancelled_sequences), at_most=True, cancelled_sequences=cancelled_sequences
        ),
    }


def median_or_none(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None
