"""Fault soak: ``wakeserve up`` under mixed load while faults are injected on a schedule; nothing accepted is lost.

One ``up`` (embedded broker and S3 kept under its state directory, the ``echo`` function) takes v2 calls
through the gateway and events whose payload sits in S3, posted to the ingress by reference, for the whole
run. Faults, one per window, in this order: SIGKILL of a ready replica; SIGTERM, then SIGKILL, of the broker
(``up`` restarts it); the S3 server frozen (SIGSTOP) for 10 s; a rollout to a version whose model raises on half its
calls (rolled back by the canary); a slow client trickling a request body; a restart of ``up`` itself
(SIGTERM, then started again on the same ports and state directory). Per window: requests sent, answered,
failed with a clear error, lost (accepted events without a result, must be 0), duplicated results (at least
once, listed by id), and the time until the first answer to a request sent after the window's last failure.

    python -m bench.soak [--window S] [--events-per-s N] [--calls-per-s N] [--out bench/results]

Writes ``soak.json`` and ``soak.png``. Every process it starts is stopped by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.soak_ledger import Fault, Ledger
from bench.soak_load import Target, Traffic
from core.processes import ChildProcess, free_port
from events.settings import EventSettings
from tests.support.up import manifests_with_echo

PERIODS = ["--cooldown-period", "3", "--polling-interval", "1", "--stable-window", "6", "--max-replicas", "2"]


class Up:
    """``wakeserve up`` as a child process on fixed ports, so it can be restarted in place."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.http, self.kafka, self.s3 = free_port(), free_port(), free_port()
        self.manifests = manifests_with_echo(tmp)
        self.state = tmp / "state"
        self.url = f"http://127.0.0.1:{self.http}"
        self.process: ChildProcess | None = None

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "wakeserve", "up", "--quiet", "--functions", "echo",
            "--http-port", str(self.http), "--kafka-port", str(self.kafka), "--s3-port", str(self.s3),
            "--scaler-port", "0", "--manifests", str(self.manifests), "--state-dir", str(self.state), *PERIODS,
        ]  # fmt: skip
        # Replicas load candidates only from allowlisted places: here, the soak's own echo versions.
        env = {"WAKESERVE_MODEL_URI_ALLOWLIST": f"s3://wakeserve-models/,{self.tmp / 'versions'}"}
        self.process = ChildProcess("wakeserve-up", argv, env=env, log_path=self.tmp / "up.log")
        self.process.wait_until(self._serving, 120)

    def _serving(self) -> bool:
        try:
            return httpx.get(f"{self.url}/wakeserve/status", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(60)

    def status(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/wakeserve/status", timeout=5).json())

    def admin_headers(self) -> dict[str, str]:
        token = json.loads((self.state / "context.json").read_text())["admin_token"]
        return {"authorization": f"Bearer {token}"}

    def settings(self) -> EventSettings:
        return EventSettings(kafka_bootstrap=f"127.0.0.1:{self.kafka}", s3_endpoint=f"http://127.0.0.1:{self.s3}")


def poll(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} after {timeout:.0f}s")
        time.sleep(0.2)


def kill_replica(up: Up) -> str:
    poll("a ready echo replica", lambda: any(p["state"] == "ready" for p in _pods(up)), 60)
    pid = next(p["pid"] for p in _pods(up) if p["state"] == "ready")
    os.kill(pid, signal.SIGKILL)
    return f"replica pid {pid}"


def _pods(up: Up) -> list[dict[str, Any]]:
    return list(up.status()["functions"]["echo"]["pods"])


def signal_broker(sig: int) -> Callable[[Up], str]:
    def inject(up: Up) -> str:
        pid = up.status()["embedded"]["broker"]["pid"]
        os.kill(pid, sig)
        poll("the broker back", lambda: up.status()["embedded"]["broker"]["pid"] != pid, 60)
        return f"broker pid {pid}, {signal.Signals(sig).name}"

    return inject


def freeze_s3(up: Up, seconds: float = 10.0) -> str:
    pid = up.status()["embedded"]["S3 server"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        threading.Event().wait(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
    return f"S3 pid {pid} stopped {seconds:g}s"


def failing_rollout(up: Up) -> str:
    version = up.tmp / "versions" / "faulty"
    version.mkdir(parents=True, exist_ok=True)
    (version / "config.json").write_text(json.dumps({"version": "faulty", "error_rate": 0.5, "healthy_calls": 20}))
    url = f"{up.url}/wakeserve/functions/echo/rollout"
    body = {"model_uri": str(version), "version": "faulty", "steps": [25, 100], "hold_s": 3}
    httpx.post(url, json=body, headers=up.admin_headers(), timeout=10).raise_for_status()

    def finished() -> bool:
        rollout = httpx.get(url, timeout=10).json().get("rollout") or {}
        return rollout.get("phase") in ("promoted", "rolled_back", "aborted", "failed")

    poll("the rollout finished", finished, 120)
    return str(httpx.get(url, timeout=10).json()["rollout"]["phase"])


def slow_client(up: Up, seconds: float = 10.0) -> str:
    """A client that sends its body one byte a second; what the gateway answers it is the outcome."""
    body = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[1]}]}'
    with socket.create_connection(("127.0.0.1", up.http), timeout=seconds + 30) as s:
        head = "POST /v2/models/echo/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        s.sendall(f"{head}content-length: {len(body)}\r\n\r\n".encode())
        started = time.monotonic()
        sent = 0
        try:
            while time.monotonic() - started < seconds and sent < len(body) - 1:
                s.sendall(body[sent : sent + 1])
                sent += 1
                threading.Event().wait(1.0)
            s.sendall(body[sent:])
            answer = s.recv(200).split(b"\r\n", 1)[0].decode(errors="replace")
        except OSError as exc:
            answer = f"connection closed by the gateway ({type(exc).__name__})"
    return f"slow client got: {answer or 'connection closed'}"


def restart_up(up: Up) -> str:
    up.stop()
    up.start()
    return "up restarted"


FAULTS: list[tuple[str, Callable[[Up], str]]] = [
    ("replica SIGKILL", kill_replica),
    ("broker restart (SIGTERM)", signal_broker(signal.SIGTERM)),
    ("broker crash (SIGKILL)", signal_broker(signal.SIGKILL)),
    ("S3 frozen 10 s", freeze_s3),
    ("rollout to a raising model", failing_rollout),
    ("slow client", slow_client),
    ("up restart", restart_up),
]


def run(window: float, events_per_s: float, calls_per_s: float, tmp: Path) -> dict[str, Any]:
    up = Up(tmp)
    up.start()
    ledger = Ledger()
    traffic = Traffic(Target(up.url, up.settings()), ledger, events_per_s=events_per_s, calls_per_s=calls_per_s)
    faults: list[Fault] = []
    notes: dict[str, str] = {}
    started = time.time()
    try:
        traffic.start()
        threading.Event().wait(window)
        for name, inject in FAULTS:
            faults.append(Fault(name, time.time()))
            notes[name] = inject(up)
            threading.Event().wait(window)
        traffic.stop_sending()
        missing = traffic.wait_for_answers(timeout=120)
    finally:
        traffic.close()
        up.stop()
    end = time.time()
    rows = ledger.tally(faults, end)
    for row in rows:
        row["note"] = notes.get(row["fault"], "")
        row["at"] = None if row["at"] is None else round(row["at"] - started, 1)
    timeline = sorted(
        (round(r.sent_at - started, 2), r.kind, "answered" if r.answered else "failed" if r.error else "lost")
        for r in ledger.requests.values()
    )
    return {
        "window_s": window,
        "events_per_s": events_per_s,
        "calls_per_s": calls_per_s,
        "duration_s": round(end - started, 1),
        "lost_total": len(missing),
        "faults": rows,
        "errors_seen": sorted({r.error for r in ledger.requests.values() if r.error and not r.answered}),
        "timeline": timeline,
    }


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4))
    styles = {("sync", "answered"): ("tab:blue", 0), ("event", "answered"): ("tab:green", 1)}
    styles |= {("sync", "failed"): ("tab:orange", 0), ("event", "failed"): ("tab:red", 1), ("event", "lost"): ("k", 1)}
    for (kind, outcome), (colour, row) in styles.items():
        xs = [t for t, k, o in report["timeline"] if k == kind and o == outcome]
        ax.scatter(xs, [row] * len(xs), s=6, c=colour, label=f"{kind} {outcome} ({len(xs)})", marker="|")
    for fault in report["faults"][1:]:
        ax.axvline(fault["at"], color="grey", lw=0.8, ls="--")
        ax.text(fault["at"], 1.35, fault["fault"], rotation=20, fontsize=7)
    ax.set_yticks([0, 1], ["v2 calls", "events"])
    ax.set_ylim(-0.5, 1.9)
    ax.set_xlabel("seconds since start (by send time)")
    ax.legend(loc="lower right", fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float, default=20.0, help="seconds of traffic before and after each fault")
    parser.add_argument("--events-per-s", type=float, default=8.0)
    parser.add_argument("--calls-per-s", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = run(args.window, args.events_per_s, args.calls_per_s, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    plot(report, args.out / "soak.png")
    (args.out / "soak.json").write_text(json.dumps(report, indent=1) + "\n")
    summary = {k: v for k, v in report.items() if k != "timeline"}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
