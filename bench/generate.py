"""Generation benchmark: the ``generator`` function (SmolLM2-135M-Instruct, fp32, CPU) served by the
continuous-batching engine, against what the same model does in-process. One run measures:

1. the raw ceiling, in a child process of its own with no replica running: ``model.generate``, greedy,
   64 new tokens per sequence, static batches of 1, 8 and 16 distinct chat prompts (left-padded), tokens/s;
   and the prefill time of one prompt alone (median of five forward passes);
2. served, against one replica, through the OpenAI chat route with ``stream: true`` (SSE parsed here): 1, 4
   and 16 concurrent closed-loop clients, each sending streams back to back; tokens/s (usage completion
   tokens over the phase's wall time), TTFT p50/p99 (sent → first content delta) and inter-token p50/p99
   (between consecutive content deltas of one stream); 64 tokens each (``ignore_eos``), greedy;
3. cancellation: 16 streams where half close their connection after 5 content deltas, against 16 where nobody
   leaves; the stayers' delta rate while the others are there and after they left, and the replica's
   counters (cancelled requests, tokens computed after a cancel, tokens never generated).

This machine (2 cores, shared) drifts by tens of percent from minute to minute, so the parts are interleaved:
raw, served, raw, served, ..., raw. A round's throughput ratio is its served 16-stream rate over the mean of
the raw batch-16 rates either side; the goal's figure is the median ratio. The load average is recorded.

    python -m bench.generate [--out bench/results] [--quick] [--rounds R] [--threads T]

Writes ``generate.json`` and ``generate.png``. Every process it starts is stopped by pid; only loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.generate_load import COUNTERS, HOST, read_counters, run_phase, settled_counters
from bench.generate_summary import (
    StreamTiming,
    adjacent_ratios,
    cancellation_windows,
    goals,
    histogram_mean,
    median_or_none,
    phase_summary,
    whole_rate,
)
from core.processes import ChildProcess, free_port, http_ok, replica_argv

ROOT = Path(__file__).resolve().parent.parent
MAX_TOKENS = 64
STREAMS = 16
LEAVE_AFTER = 5
TTFT_SERIES = "wakeserve_generation_time_to_first_token_seconds"
CANCEL_SERIES = COUNTERS[:4]
STAYER_KEYS = ("streams", "completed", "errors", "wrong_token_counts", "inter_token_p99_ms")
# (concurrent clients, streams each client sends back to back)
PLAN = {False: ((1, 6), (4, 3), (16, 2)), True: ((1, 1), (4, 1), (16, 1))}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def raw_run(index: int, log_dir: Path, quick: bool, threads: int) -> dict[str, Any]:
    out = log_dir / f"generate-raw-{index}.json"
    out.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "bench.generate_raw", "--out", str(out), "--threads", str(threads)]
    argv += ["--repeats", "1" if quick else "3"]
    child = ChildProcess(f"generate-raw-{index}", argv, log_path=log_dir / "generate-raw.log", cwd=ROOT)
    try:
        code = child.proc.wait(timeout=1800)
    finally:
        child.stop()
    if code != 0:
        raise RuntimeError(f"the raw measurement exited with {code}; see {log_dir / 'generate-raw.log'}")
    report: dict[str, Any] = json.loads(out.read_text())
    report["load_average"] = load_average()
    rates = {k: round(v["tokens_per_s"], 1) for k, v in report["throughput"].items()}
    print(f"  raw {index}: {rates} tokens/s, prefill {report['prefill_ms']:.1f} ms", flush=True)
    return report


def start_replica(log_dir: Path, threads: int) -> tuple[ChildProcess, int]:
    http = free_port()
    argv = replica_argv("generator", http, 0, "--torch-threads", str(threads), "--log-level", "WARNING", admin_port=0)
    child = ChildProcess("generator", argv, log_path=log_dir / "generate-replica.log")
    try:
        child.wait_until(lambda: http_ok(f"http://{HOST}:{http}/v2/models/generator/ready"), timeout=300, interval=0.2)
    except Exception:
        child.stop()
        raise
    return child, http


def phase(port: int, clients: int, rounds: int, first: int, leavers: tuple[int, ...] = ()) -> list[list[StreamTiming]]:
    streams, _ = asyncio.run(run_phase(port, clients, rounds, first, MAX_TOKENS, leavers, LEAVE_AFTER))
    return streams


def cancellation(port: int, first: int) -> dict[str, Any]:
    """16 streams where nobody leaves, then 16 where the odd-numbered clients leave after a few deltas."""
    leavers = tuple(range(1, STREAMS, 2))
    baseline = phase(port, STREAMS, 1, first)
    before = read_counters(port)
    run = phase(port, STREAMS, 1, first + STREAMS, leavers)
    after = settled_counters(port, before["wakeserve_generation_cancelled_requests_total"] + len(leavers))
    counted = {name.removeprefix("wakeserve_generation_"): after[name] - before[name] for name in CANCEL_SERIES}
    stayers = [s for c, streams in enumerate(run) if c not in leavers for s in streams]
    gone = [s for c, streams in enumerate(run) if c in leavers for s in streams]
    base_stayers = [s for c, streams in enumerate(baseline) if c not in leavers for s in streams]
    windows = cancellation_windows(stayers, gone)
    reference = whole_rate(base_stayers)
    return {
        "leavers": len(leavers),
        "left": sum(1 for s in gone if s.left_at is not None),
        "stayers": {k: v for k, v in phase_summary(stayers, 1.0, MAX_TOKENS).items() if k in STAYER_KEYS},
        "baseline_stayers_per_s": reference,
        **windows,
        "after_vs_baseline": windows["after_per_s"] / reference if windows["after_per_s"] and reference else None,
        "counters": counted,
        "load_average": load_average(),
    }


def served_round(index: int, log_dir: Path, quick: bool, threads: int) -> dict[str, Any]:
    child, port = start_replica(log_dir, threads)
    try:
        phase(port, 1, 1, 10_000 * (index + 1) - 1)  # the first stream through the routes pays one-off costs
        rows, first = [], 10_000 * (index + 1)
        for clients, rounds in PLAN[quick]:
            before = read_counters(port)
            streams, wall = asyncio.run(run_phase(port, clients, rounds, first, MAX_TOKENS))
            server_ttft = histogram_mean(before, read_counters(port), TTFT_SERIES)
            first += clients * rounds
            flat = [s for client in streams for s in client]
            rows.append({"clients": clients, "rounds": rounds, **phase_summary(flat, wall, MAX_TOKENS)})
            # The engine's own arrival → first token, to tell its share of TTFT from the routes' and the client's.
            rows[-1]["server_ttft_mean_ms"] = server_ttft * 1000 if server_ttft is not None else None
            rows[-1]["load_average"] = load_average()
            r = rows[-1]
            print(
                f"  served {index} c={clients}: {r['tokens_per_s']:.1f} tokens/s, TTFT p50 {r['ttft_p50_ms']:.0f} "
                f"p99 {r['ttft_p99_ms']:.0f} ms (engine mean {r['server_ttft_mean_ms'] or 0:.0f}), "
                f"inter-token p99 {r['inter_token_p99_ms']:.0f} ms"
                + (f", errors {r['errors']}" if r["errors"] else "")
                + (f", wrong token counts {r['wrong_token_counts']}" if r["wrong_token_counts"] else ""),
                flush=True,
            )
        cancelled = cancellation(port, first)
        c = cancelled["counters"]
        print(
            f"  cancel {index}: {cancelled['left']} left, counters {c}; stayers {cancelled['during_per_s']} → "
            f"{cancelled['after_per_s']} deltas/s (nobody leaving: {cancelled['baseline_stayers_per_s']})",
            flush=True,
        )
    finally:
        child.stop()
    return {"phases": rows, "cancellation": cancelled}


def evaluate(raw: list[dict[str, Any]], served: list[dict[str, Any]]) -> dict[str, Any]:
    def at(round_: dict[str, Any], clients: int) -> dict[str, Any]:
        return next(p for p in round_["phases"] if p["clients"] == clients)

    ratios = adjacent_ratios(
        [at(s, 16)["tokens_per_s"] for s in served], [r["throughput"]["batch_16"]["tokens_per_s"] for r in raw]
    )
    late = [s["cancellation"]["counters"]["tokens_after_cancel_total"] for s in served]
    return goals(
        throughput_ratio=statistics.median(ratios),
        ttft_p50_ms=median_or_none([at(s, 1)["ttft_p50_ms"] for s in served]),
        raw_prefill_ms=statistics.median(r["prefill_ms"] for r in raw),
        tokens_after_cancel=max(late),
        cancelled_sequences=STREAMS // 2,
    ) | {"round_ratios": ratios, "tokens_after_cancel_per_round": late}


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    for i, raw in enumerate(report["raw"]):
        batches = sorted(int(k.split("_")[1]) for k in raw["throughput"])
        rates = [raw["throughput"][f"batch_{b}"]["tokens_per_s"] for b in batches]
        left.plot(batches, rates, color="grey", linestyle="--", marker="x", label="raw static batch" if not i else None)
    for i, served in enumerate(report["served"]):
        phases = served["phases"]
        clients = [p["clients"] for p in phases]
        left.plot(clients, [p["tokens_per_s"] for p in phases], marker="o", label=f"served, round {i + 1}")
        middle.plot(clients, [p["ttft_p50_ms"] for p in phases], marker="o", label=f"TTFT p50, round {i + 1}")
        middle.plot(clients, [p["ttft_p99_ms"] for p in phases], marker="^", linestyle="--", label=f"TTFT p99, {i + 1}")
        middle.plot(
            clients, [p["inter_token_p99_ms"] for p in phases], marker="s", linestyle=":", label=f"ITL p99, {i + 1}"
        )
    prefill = report["goals"]["ttft_p50_1_stream_ms"]["raw_prefill_ms"]
    middle.axhline(prefill, color="grey", linestyle="--", label="raw prefill, one prompt")
    left.set(xlabel="concurrent streams / batch", ylabel="tokens / s", title="generation throughput", xscale="log")
    left.set_xticks([1, 4, 8, 16], ["1", "4", "8", "16"])
    left.legend(fontsize=8)
    middle.set(xlabel="concurrent streams", ylabel="ms", title="latency", xscale="log", yscale="log")
    middle.set_xticks([1, 4, 16], ["1", "4", "16"])
    middle.legend(fontsize=7)
    labels, values = [], []
    for i, served in enumerate(report["served"]):
        c = served["cancellation"]
        for name, key in (
            ("nobody leaves", "baseline_stayers_per_s"),
            ("others there", "during_per_s"),
            ("after", "after_per_s"),
        ):
            labels.append(f"{i + 1}: {name}")
            values.append(c[key] or 0.0)
    right.barh(labels, values, color="tab:green")
    right.invert_yaxis()
    right.set(xlabel="stayers' deltas / s (8 streams)", title="half of 16 streams leave after 5 deltas")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--quick", action="store_true", help="one round of small counts: a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="served rounds (default 2, quick 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, raw and served alike")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 2)
    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = args.out / "logs"
    log_dir.mkdir(exist_ok=True)

    started_load = load_average()
    raw, served = [raw_run(0, log_dir, args.quick, args.threads)], []
    for i in range(rounds):
        served.append(served_round(i, log_dir, args.quick, args.threads))
        raw.append(raw_run(i + 1, log_dir, args.quick, args.threads))
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_average": {"start": started_load, "end": load_average()},
        "quick": args.quick,
        "threads": args.threads,
        "max_tokens": MAX_TOKENS,
        "raw": raw,
        "served": served,
        "goals": evaluate(raw, served),
    }
    (args.out / "generate.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "generate.png")
    print(json.dumps(report["goals"], indent=2))


if __name__ == "__main__":
    main()
