"""Synchronous serving benchmark. One run measures, on this machine:

1. the embedder's raw in-process throughput at batch 1 and batch 32 (no server);
2. served embedder throughput and p50/p99 latency at concurrency 1, 8 and 32, batching off and on;
3. requests/s of a trivial (echo) model through plain ``kserve.ModelServer`` and through wakeserve's runtime.

    python -m bench.sync [--duration S] [--out bench/results]

Writes ``sync.json`` and ``sync.png``. Every server it starts is a child process stopped by pid at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from bench.loadgen import encode_post, run_load
from core.processes import ChildProcess, free_port, http_ok, replica_argv

HOST = "127.0.0.1"
SENTENCES = [
    f"Request {i}: {s}"
    for i, s in enumerate(
        [
            "The quick brown fox jumps over the lazy dog near the river bank.",
            "Please refund the payment you took twice from my credit card.",
            "Kubernetes scales the deployment to zero when nobody calls it.",
            "A sentence embedding maps text to a point in vector space.",
            "My parcel has not arrived and the tracking page shows no update.",
            "Event-driven inference wakes the model only when work arrives.",
            "The weather today is sunny with a light breeze from the west.",
            "Batching merges concurrent requests to use the CPU efficiently.",
        ]
        * 8
    )
]


def start(name: str, argv: list[str], port: int, log_dir: Path, ready_path: str) -> ChildProcess:
    child = ChildProcess(name, argv, log_path=log_dir / f"{name}.log")
    child.wait_until(lambda: http_ok(f"http://{HOST}:{port}{ready_path}"), timeout=180, interval=0.2)
    return child


def raw_throughput(duration: float, batches: tuple[int, ...] = (1, 32)) -> dict[str, float]:
    """Sentences per second of the embedder called directly, at each batch size (``SENTENCES``, in turn)."""
    from functions.embedder.function import Embedder

    model = Embedder()
    model.load(None)
    texts = np.array([s.encode() for s in SENTENCES], dtype=object)
    result = {}
    for batch in batches:
        model.infer({"text": texts[:batch]})  # warm
        done, i, started = 0, 0, time.perf_counter()
        while time.perf_counter() - started < duration:
            chunk = np.take(texts, range(i, i + batch), mode="wrap")
            model.infer({"text": chunk})
            done += batch
            i += batch
        result[f"batch_{batch}_per_s"] = done / (time.perf_counter() - started)
    return result


def text_bodies(port: int) -> list[bytes]:
    bodies = []
    for i, sentence in enumerate(SENTENCES):
        body = {
            "id": f"r{i}",
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [sentence]}],
        }
        bodies.append(encode_post(HOST, port, "/v2/models/embedder/infer", json.dumps(body).encode()))
    return bodies


def echo_bodies(port: int) -> list[bytes]:
    body = {"id": "e1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 2.0, 3.0, 4.0]}]}
    return [encode_post(HOST, port, "/v2/models/echo/infer", json.dumps(body).encode())]


def serve_argv(function: str, http: int, grpc: int, *extra: str) -> list[str]:
    return replica_argv(function, http, grpc, "--log-level", "WARNING", *extra, admin_port=0)


def served_embedder(duration: float, log_dir: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for batching, extra in (("off", ["--max-batch-size", "1"]), ("on", [])):
        http, grpc = free_port(), free_port()
        child = start(
            f"embedder-batching-{batching}",
            serve_argv("embedder", http, grpc, *extra),
            http,
            log_dir,
            "/v2/health/ready",
        )
        try:
            for concurrency in (1, 8, 32):
                result = asyncio.run(
                    run_load(HOST, http, text_bodies(http), concurrency=concurrency, duration=duration)
                )
                rows.append({"batching": batching, **result.summary()})
                print(
                    f"  embedder batching={batching} c={concurrency}: {rows[-1]['throughput_rps']:.1f} req/s "
                    f"p50 {rows[-1]['p50_ms']:.1f} ms p99 {rows[-1]['p99_ms']:.1f} ms",
                    flush=True,
                )
        finally:
            child.stop()
    return rows


def trivial(duration: float, log_dir: Path, concurrency: int = 20) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    variants = [
        ("plain kserve", lambda h, g: [sys.executable, "-m", "bench.plain_kserve_echo", str(h), str(g)]),
        (
            "plain kserve (latency log off)",
            lambda h, g: [sys.executable, "-m", "bench.plain_kserve_echo", str(h), str(g), "--quiet"],
        ),
        ("wakeserve (batching on)", lambda h, g: serve_argv("echo", h, g)),
        ("wakeserve (batching off)", lambda h, g: serve_argv("echo", h, g, "--max-batch-size", "1")),
    ]
    for name, argv in variants:
        http, grpc = free_port(), free_port()
        child = start(
            name.replace(" ", "_").replace("(", "").replace(")", ""),
            argv(http, grpc),
            http,
            log_dir,
            "/v2/health/ready",
        )
        try:
            result = asyncio.run(run_load(HOST, http, echo_bodies(http), concurrency=concurrency, duration=duration))
        finally:
            child.stop()
        rows.append({"server": name, **result.summary()})
        print(f"  echo via {name}: {rows[-1]['throughput_rps']:.0f} req/s p99 {rows[-1]['p99_ms']:.2f} ms", flush=True)
    return rows


def plot(report: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    raw = report["raw"]
    served = report["served"]
    assert isinstance(raw, dict)
    assert isinstance(raw, dict) and isinstance(served, list)
    for batching, marker in (("off", "o"), ("on", "s")):
        rows = [r for r in served if r["batching"] == batching]
        left.plot(
            [r["concurrency"] for r in rows],
            [r["throughput_rps"] for r in rows],
            marker=marker,
            label=f"served, batching {batching}",
        )
        middle.plot(
            [r["concurrency"] for r in rows],
            [r["p99_ms"] for r in rows],
            marker=marker,
            label=f"p99, batching {batching}",
        )
        middle.plot(
            [r["concurrency"] for r in rows],
            [r["p50_ms"] for r in rows],
            marker=marker,
            linestyle="--",
            label=f"p50, batching {batching}",
        )
    left.axhline(raw["batch_32_per_s"], color="grey", linestyle="--", label="raw model, batch 32")
    left.axhline(raw["batch_1_per_s"], color="grey", linestyle=":", label="raw model, batch 1")
    left.set(
        xlabel="concurrent clients",
        ylabel="sentences / s",
        title="embedder throughput",
        xscale="log",
        xticks=[1, 8, 32],
    )
    left.set_xticklabels(["1", "8", "32"])
    left.legend(fontsize=8)
    middle.set(xlabel="concurrent clients", ylabel="latency (ms)", title="embedder latency", xscale="log", yscale="log")
    middle.set_xticks([1, 8, 32], ["1", "8", "32"])
    middle.legend(fontsize=8)
    trivial_rows = report["trivial"]
    assert isinstance(trivial_rows, list)
    right.barh([r["server"] for r in trivial_rows], [r["throughput_rps"] for r in trivial_rows], color="tab:green")
    right.set(xlabel="requests / s (20 clients)", title="trivial model: serving overhead")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per measured configuration")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = args.out / "logs"
    log_dir.mkdir(exist_ok=True)

    print("raw in-process embedder throughput", flush=True)
    raw = raw_throughput(args.duration)
    print(f"  batch 1: {raw['batch_1_per_s']:.1f}/s, batch 32: {raw['batch_32_per_s']:.1f}/s", flush=True)
    print("served embedder", flush=True)
    served = served_embedder(args.duration, log_dir)
    print("trivial model", flush=True)
    trivial_rows = trivial(args.duration, log_dir)
    # The machine's speed drifts; measure the raw ceiling again and compare against the better of the two.
    again = raw_throughput(args.duration)
    print(f"raw again: batch 1: {again['batch_1_per_s']:.1f}/s, batch 32: {again['batch_32_per_s']:.1f}/s", flush=True)
    raw = {"runs": [raw, again], **{k: max(raw[k], again[k]) for k in raw}}

    batched_32 = next(r for r in served if r["batching"] == "on" and r["concurrency"] == 32)
    plain = next(r for r in trivial_rows if r["server"] == "plain kserve")
    plain_quiet = next(r for r in trivial_rows if r["server"] == "plain kserve (latency log off)")
    ours = next(r for r in trivial_rows if r["server"] == "wakeserve (batching on)")
    goals = {
        "batched_c32_vs_raw_b32": float(batched_32["throughput_rps"]) / raw["batch_32_per_s"],  # type: ignore[arg-type]
        "wakeserve_vs_plain_kserve": float(ours["throughput_rps"]) / float(plain["throughput_rps"]),  # type: ignore[arg-type]
        "wakeserve_vs_plain_kserve_quiet": float(ours["throughput_rps"]) / float(plain_quiet["throughput_rps"]),  # type: ignore[arg-type]
    }
    report = {
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "duration_s": args.duration,
        "raw": raw,
        "served": served,
        "trivial": trivial_rows,
        "goals": goals,
        "targets": {"batched_c32_vs_raw_b32": 0.85, "wakeserve_vs_plain_kserve": 0.95},
    }
    (args.out / "sync.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "sync.png")
    print(json.dumps(goals, indent=2))


if __name__ == "__main__":
    main()
