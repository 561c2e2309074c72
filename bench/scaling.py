"""Scaling benchmark: replicas, in-flight requests and lag over time during a load ramp up and down.

Runs a real ``wakeserve up`` (embedded broker and S3, real replicas) with the repository's manifests and
shortened periods, then drives the embedder with HTTP clients in steps of concurrency and one burst of events,
sampling ``/wakeserve/status`` four times a second until the function is back at zero.

    python -m bench.scaling [--function embedder] [--phase-s 20] [--out bench/results]

Writes ``scaling.json`` and ``scaling.png``. ``wakeserve up`` is stopped by pid at the end; it stops its own
replicas and embedded servers.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from core.processes import ChildProcess, free_port
from events.client import text_request

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = [
    "--stable-window",
    "12",
    "--scale-to-zero-grace",
    "3",
    "--cooldown-period",
    "10",
    "--polling-interval",
    "2",
]
SENTENCE = "Event-driven inference wakes the model only when work arrives, then returns it to zero."


class Load:
    """Closed-loop HTTP clients whose number can change while running."""

    def __init__(self, url: str, function: str) -> None:
        self.url, self.function = url, function
        self.target = 0
        self.threads: list[threading.Thread] = []
        self.latencies: list[tuple[float, float]] = []
        self.errors: list[tuple[float, int, str]] = []
        self.stop = threading.Event()
        self.body = text_request([SENTENCE])

    def _client(self, index: int) -> None:
        with httpx.Client(timeout=120) as client:
            while not self.stop.is_set() and index < self.target:
                start = time.time()
                try:
                    r = client.post(f"{self.url}/v2/models/{self.function}/infer", content=self.body)
                    if r.status_code == 200:
                        self.latencies.append((start, time.time() - start))
                    else:
                        self.errors.append((start, r.status_code, r.text[:200]))
                except httpx.HTTPError as exc:
                    self.errors.append((start, 0, repr(exc)))
            # a client above the target leaves; the list keeps its slot for reuse
        return None

    def set(self, clients: int) -> None:
        self.target = clients
        self.threads = [t for t in self.threads if t.is_alive()]
        for index in range(len(self.threads), clients):
            t = threading.Thread(target=self._client, args=(index,), daemon=True)
            t.start()
            self.threads.append(t)

    def close(self) -> None:
        self.target = 0
        self.stop.set()
        for t in self.threads:
            t.join(130)


def post_burst(url: str, function: str, count: int) -> float:
    events = []
    for i in range(count):
        events.append(
            {
                "specversion": "1.0",
                "id": f"bench-{uuid.uuid4().hex}-{i}",
                "source": "/bench/scaling",
                "type": "dev.wakeserve.inference.request",
                "model": function,
                "datacontenttype": "application/json",
                "data": orjson.loads(text_request([SENTENCE])),
            }
        )
    started = time.time()
    for chunk in range(0, count, 200):
        r = httpx.post(
            f"{url}/events",
            content=orjson.dumps(events[chunk : chunk + 200]),
            headers={"content-type": "application/cloudevents-batch+json"},
            timeout=60,
        )
        r.raise_for_status()
    return started


def run(function: str, phase_s: float, burst: int, out: Path) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="wakeserve-bench-"))
    http = free_port()
    argv = [
        sys.executable, "-m", "wakeserve", "up", "--quiet", "--functions", function, "--scaler-port", "0",
        "--http-port", str(http), "--kafka-port", str(free_port()), "--s3-port", str(free_port()),
        "--state-dir", str(tmp), *OVERRIDES,
    ]  # fmt: skip
    up = ChildProcess("wakeserve-up", argv, log_path=tmp / "up.log", cwd=REPO)
    url = f"http://127.0.0.1:{http}"
    samples: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []
    stop_sampling = threading.Event()
    load = Load(url, function)
    try:
        up.wait_until(lambda: _status(url) is not None, 60)
        t0 = time.time()

        def sample() -> None:
            while not stop_sampling.is_set():
                status = _status(url)
                if status is not None:
                    f = status["functions"][function]
                    samples.append(
                        {
                            "t": round(time.time() - t0, 3),
                            "clients": load.target,
                            **{k: f[k] for k in ("replicas", "ready", "desired", "inflight", "held", "lag")},
                        }
                    )
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        plan = [("idle", 0), ("ramp 2", 2), ("ramp 8", 8), ("peak 24", 24), ("down 8", 8), ("down 2", 2)]
        for name, clients in plan:
            phases.append({"name": name, "t": round(time.time() - t0, 3), "clients": clients})
            load.set(clients)
            if name == "peak 24" and burst:
                burst_at = post_burst(url, function, burst)
                phases.append({"name": f"{burst} events", "t": round(burst_at - t0, 3), "clients": clients})
            time.sleep(phase_s if clients or name != "idle" else 5)
        load.set(0)
        phases.append({"name": "idle", "t": round(time.time() - t0, 3), "clients": 0})
        deadline = time.time() + 180
        while time.time() < deadline:
            status = _status(url)
            if status and status["functions"][function]["replicas"] == 0 and time.time() - t0 > phases[-1]["t"] + 1:
                break
            time.sleep(0.5)
        time.sleep(1)
        stop_sampling.set()
        sampler.join(5)
    finally:
        load.close()
        stop_sampling.set()
        code = up.stop(90)
    latencies = np.array([lat for _, lat in load.latencies]) * 1000
    back_to_zero = next(
        (s["t"] for s in samples if s["t"] > phases[-1]["t"] and s["replicas"] == 0), None
    )  # first sample at zero after the load stopped
    report = {
        "benchmark": "scaling",
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        "function": function,
        "overrides": OVERRIDES,
        "phase_s": phase_s,
        "phases": phases,
        "samples": samples,
        "requests": len(load.latencies),
        "errors": len(load.errors),
        "error_examples": load.errors[:5],
        "latency_ms": {
            "p50": float(np.percentile(latencies, 50)) if latencies.size else None,
            "p99": float(np.percentile(latencies, 99)) if latencies.size else None,
        },
        "max_replicas": max((s["replicas"] for s in samples), default=0),
        "max_lag": max((s["lag"] for s in samples), default=0),
        "back_to_zero_after_load_s": round(back_to_zero - phases[-1]["t"], 2) if back_to_zero else None,
        "up_exit_code": code,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(report, indent=2))
    plot(report, out / "scaling.png")
    return report


def _status(url: str) -> dict[str, Any] | None:
    try:
        r = httpx.get(f"{url}/wakeserve/status", timeout=2)
    except httpx.HTTPError:
        return None
    return dict(r.json()) if r.status_code == 200 else None


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report["samples"]
    t = [x["t"] for x in s]
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    axes[0].step(t, [x["replicas"] for x in s], where="post", label="replicas")
    axes[0].step(t, [x["ready"] for x in s], where="post", label="ready")
    axes[0].step(t, [x["desired"] for x in s], where="post", label="desired", linestyle=":")
    axes[0].set_ylabel("replicas")
    axes[1].plot(t, [x["inflight"] for x in s], label="in flight (gateway)")
    axes[1].step(t, [x["clients"] for x in s], where="post", label="HTTP clients", linestyle="--")
    axes[1].set_ylabel("requests")
    axes[2].plot(t, [x["lag"] for x in s], label="consumer lag", color="tab:red")
    axes[2].set_ylabel("events")
    axes[2].set_xlabel("seconds")
    for ax in axes:
        for phase in report["phases"]:
            ax.axvline(phase["t"], color="grey", linewidth=0.5)
        ax.legend(loc="upper right", fontsize=8)
    for phase in report["phases"]:
        axes[0].text(phase["t"], axes[0].get_ylim()[1], phase["name"], fontsize=7, rotation=45, va="bottom")
    fig.suptitle(
        f"{report['function']} under a load ramp ({report['requests']} requests, {report['errors']} errors)", y=0.995
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--function", default="embedder")
    parser.add_argument("--phase-s", type=float, default=20)
    parser.add_argument("--burst", type=int, default=2000, help="events posted at the peak (0: none)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    report = run(args.function, args.phase_s, args.burst, args.out)
    summary = {k: report[k] for k in ("requests", "errors", "latency_ms", "max_replicas", "max_lag")}
    summary["back_to_zero_after_load_s"] = report["back_to_zero_after_load_s"]
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
