"""Latency and errors before, during and after a hot swap under steady or saturating load.

One replica (``wakeserve serve F --grpc-port 0 --torch-threads 1``, as the manifests run it) serves v2 calls:
an open-loop stream at ``--rate`` per second, or, with ``--clients N``, N clients in a closed loop (each sends
its next call as soon as the previous one is answered), which keeps the replica saturated. After
``--before-s`` seconds a candidate version is loaded through the control API with ``promote: true``: it loads
beside the active version, passes its gates and takes over; the phase "during" runs from that request until
the old version has been released. The load goes on for ``--after-s`` seconds more. Every call is recorded
with its send time, latency, status and the version that answered; windows of one second give p50/p99 over
time.

    python -m bench.swap [--function classifier] [--rate 40 | --clients 4] [--before-s 20] [--after-s 20]
                         [--out bench/results]

Goals: zero failed requests; the swap completes; p99 during the swap within 1.5x of before. Writes
``swap.json`` and ``swap.png`` (open loop) or ``swap_saturated.json|png`` (closed loop); the replica it starts
is stopped by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from core.processes import ChildProcess, free_port, replica_argv

TARGET_P99_RATIO = 1.5
BODIES = {
    "classifier": {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["where is my parcel"]}]},
    "embedder": {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a sentence to embed"]}]},
    "echo": {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
}


def candidate_artifact(function: str, root: Path) -> tuple[str | None, str]:
    """A second version of the function's artifacts: same weights, a new version label."""
    if function == "classifier":
        from functions.classifier.head import packaged_artifact

        target = root / "classifier-v2"
        shutil.copytree(packaged_artifact(), target)
        head = json.loads((target / "head.json").read_text())
        head["version"] = head["version"] + "-v2"
        (target / "head.json").write_text(json.dumps(head))
        return str(target), head["version"]
    if function == "echo":
        (root / "echo-v2").mkdir()
        (root / "echo-v2" / "config.json").write_text('{"version": "echo-v2"}')
        return str(root / "echo-v2"), "echo-v2"
    return None, "all-MiniLM-L6-v2-v2"  # the embedder: the packaged weights again, under a new label


async def one_call(client: httpx.AsyncClient, url: str, body: bytes, calls: list[dict[str, Any]]) -> None:
    sent = time.monotonic()
    try:
        r = await client.post(url, content=body, headers={"content-type": "application/json"})
        status = r.status_code
        version = r.json().get("model_version") if status == 200 else None
    except httpx.HTTPError:
        status, version = 0, None
    calls.append(
        {"t": sent, "wall": time.time() - (time.monotonic() - sent), "latency_s": time.monotonic() - sent,
         "status": status, "version": version}
    )  # fmt: skip


async def closed_loop(url: str, body: bytes, clients: int, stop: asyncio.Event, calls: list[dict[str, Any]]) -> None:
    """``clients`` callers, each sending its next call as soon as its previous one is answered."""

    async def caller() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            while not stop.is_set():
                await one_call(client, url, body, calls)

    await asyncio.gather(*(caller() for _ in range(clients)))


async def load(url: str, body: bytes, rate: float, stop: asyncio.Event, calls: list[dict[str, Any]]) -> None:
    """Open loop: one call every 1/rate s whatever the latency; at most 512 in flight."""
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=64)
    sem = asyncio.Semaphore(512)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        tasks: set[asyncio.Task[None]] = set()

        async def call() -> None:
            await one_call(client, url, body, calls)
            sem.release()

        start = time.monotonic()
        n = 0
        while not stop.is_set():
            n += 1
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            await sem.acquire()
            task = asyncio.create_task(call())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)


def span(calls: list[dict[str, Any]]) -> float:
    return max(c["t"] for c in calls) - min(c["t"] for c in calls) if len(calls) > 1 else 0.0


def summary(calls: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [c["latency_s"] for c in calls if c["status"] == 200]
    failed = sum(1 for c in calls if c["status"] != 200)

    def q(p: float) -> float | None:
        return round(float(np.quantile(latencies, p)) * 1000, 2) if latencies else None

    return {"requests": len(calls), "failed": failed, "p50_ms": q(0.5), "p95_ms": q(0.95), "p99_ms": q(0.99)}


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    port, admin = free_port(), free_port()
    argv = replica_argv(args.function, port, 0, "--torch-threads", "1", "--log-level", "WARNING", admin_port=admin)
    # The candidate's artifacts are written under the work directory: the replica must allow that prefix.
    env = {"WAKESERVE_MODEL_URI_ALLOWLIST": str(workdir), "WAKESERVE_ALLOW_SKIP_GATES": ",".join(args.skip_gate or [])}
    replica = ChildProcess(f"{args.function}-swap", argv, env=env, log_path=workdir / "replica.log")
    base, admin_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}"
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            deadline = time.monotonic() + 120
            while True:  # until listening, then one long-poll until ready
                try:
                    startup = await client.get(f"{admin_base}/wakeserve/startup", params={"wait": 120}, timeout=130)
                    if startup.json().get("ready"):
                        break
                except httpx.ConnectError:
                    if time.monotonic() > deadline or not replica.alive():
                        raise
                    await asyncio.sleep(0.1)
            uri, version = candidate_artifact(args.function, workdir)
            stop, calls = asyncio.Event(), list[dict[str, Any]]()
            body = json.dumps(BODIES[args.function]).encode()
            url = f"{base}/v2/models/{args.function}/infer"
            if args.clients:
                loader = asyncio.create_task(closed_loop(url, body, args.clients, stop, calls))
            else:
                loader = asyncio.create_task(load(url, body, args.rate, stop, calls))
            await asyncio.sleep(args.warmup_s + args.before_s)
            swap_start, swap_start_wall = time.monotonic(), time.time()
            spec: dict[str, Any] = {"version": version, "promote": True, "skip_gates": args.skip_gate or []}
            if uri:
                spec["model_uri"] = uri
            answer = await client.post(f"{admin_base}/wakeserve/models/{args.function}/slots", json=spec)
            answer.raise_for_status()
            while True:  # until promoted and the old version is released
                slots = (await client.get(f"{admin_base}/wakeserve/models/{args.function}/slots")).json()
                candidate = slots["candidate"]
                if candidate is not None and candidate["state"] == "failed":
                    stop.set()
                    await loader
                    raise RuntimeError(f"the candidate failed its gates: {candidate['error']}")
                if slots["active"]["version"] == version and all(
                    h["event"] != "promoted" or h["version"] == version for h in slots["history"][-1:]
                ):
                    promoted = time.monotonic()
                    await asyncio.sleep(0.5)  # the old slot finishes its last batch and is released
                    break
                await asyncio.sleep(0.05)
            swap_end = time.monotonic()
            await asyncio.sleep(args.after_s)
            stop.set()
            await loader
            gates = slots["active"]["gates"]
            history = slots["history"]
    finally:
        replica.stop()
    t0 = min(c["t"] for c in calls) + args.warmup_s
    calls = [c for c in calls if c["t"] >= t0]
    before = [c for c in calls if c["t"] < swap_start]
    during = [c for c in calls if swap_start <= c["t"] < swap_end]
    after = [c for c in calls if c["t"] >= swap_end]
    windows = []
    for second in range(int(max(c["t"] for c in calls) - t0) + 1):
        inside = [c for c in calls if t0 + second <= c["t"] < t0 + second + 1]
        windows.append({"t_s": second, **summary(inside)})
    phase_calls = {"before": before, "during": during, "after": after}
    phases = {k: summary(v) for k, v in phase_calls.items()}
    ratio = (phases["during"]["p99_ms"] or 0) / (phases["before"]["p99_ms"] or 1)
    return {
        "function": args.function,
        "load": f"closed loop, {args.clients} clients" if args.clients else f"open loop, {args.rate:g} req/s",
        "rate_per_s": None if args.clients else args.rate,
        "clients": args.clients or None,
        "throughput_per_s": {k: round(len(v) / max(1e-9, span(v)), 1) for k, v in phase_calls.items()},
        "candidate_version": version,
        "swap_s": round(swap_end - swap_start, 3),
        "load_to_promotion_s": round(promoted - swap_start, 3),
        "swap_window_s": [round(swap_start - t0, 3), round(swap_end - t0, 3)],
        "phases": phases,
        "versions_after": sorted({str(c["version"]) for c in after}),
        "p99_during_over_before": round(ratio, 3),
        "goals": {
            "zero_failed": sum(p["failed"] for p in phases.values()) == 0,
            "swap_completed": True,  # a candidate that failed its gates ends the run with an error instead
            "p99_ratio_max": TARGET_P99_RATIO,
            "p99_ratio_met": ratio <= TARGET_P99_RATIO,
        },
        "gates": gates,
        "swap_events_s": [
            {"event": h["event"], "version": h["version"], "at_s": round(h["at"] - swap_start_wall, 3)}
            for h in history
            if h["at"] >= swap_start_wall - 1
        ],
        "slowest_during": sorted(
            (
                {
                    "at_s": round(c["wall"] - swap_start_wall, 3),
                    "latency_ms": round(c["latency_s"] * 1000, 1),
                    "version": c["version"],
                }
                for c in during
            ),
            key=lambda c: -c["latency_ms"],
        )[:5],
        "windows": windows,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "command": "python -m bench.swap " + " ".join(sys.argv[1:]),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = result["windows"]
    t = [x["t_s"] for x in w]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(t, [x["p50_ms"] for x in w], label="p50")
    ax.plot(t, [x["p99_ms"] for x in w], label="p99")
    start, end = result["swap_window_s"]
    ax.axvspan(start, end, color="orange", alpha=0.25, label=f"swap ({result['swap_s']:.1f}s)")
    failed = [x["t_s"] for x in w if x["failed"]]
    if failed:
        ax.scatter(failed, [0] * len(failed), color="red", marker="x", label="failed requests")
    p = result["phases"]
    ax.set_title(
        f"{result['function']}, {result['load']}: p99 before {p['before']['p99_ms']} ms, "
        f"during {p['during']['p99_ms']} ms, after {p['after']['p99_ms']} ms; "
        f"failed {sum(x['failed'] for x in p.values())}",
        fontsize=9,
    )
    ax.set_xlabel("seconds")
    ax.set_ylabel("latency (ms), 1 s windows")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--function", default="classifier", choices=sorted(BODIES))
    parser.add_argument("--rate", type=float, default=40.0, help="calls per second (open loop)")
    parser.add_argument("--clients", type=int, default=0, help="closed-loop clients instead of --rate (saturates)")
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--before-s", type=float, default=20.0)
    parser.add_argument("--after-s", type=float, default=20.0)
    parser.add_argument("--skip-gate", action="append", help="a gate to skip (to see what each one costs)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wakeserve-swap-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "swap_saturated" if args.clients else "swap"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, args.out / f"{name}.png")
    print(json.dumps({k: result[k] for k in ("phases", "swap_s", "p99_during_over_before", "goals")}, indent=1))


if __name__ == "__main__":
    main()
