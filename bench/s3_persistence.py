"""What keeping S3 on disk costs: PUT and GET latency of event-sized objects, and the time to come back.

Three servers, each on a free loopback port, measured in turn with the same client: moto in memory (what
``up`` used to run), moto with its request recorder on (every request appended to a file, replayed at start)
and :mod:`core.s3_store` (objects mirrored to files before the answer). After the writes, each is restarted
and the time until it answers with every object back is measured (the recorder by replaying its file).

    python -m bench.s3_persistence [--objects N] [--size BYTES] [--out bench/results]

Writes ``s3_persistence.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from core.processes import ChildProcess, free_port, http_ok, start_s3
from core.s3 import make_s3_client


def _moto(port: int, env: dict[str, str], log: Path) -> ChildProcess:
    child = ChildProcess("moto", [sys.executable, "-m", "moto.server", "-p", str(port)], env=env, log_path=log)
    child.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/moto-api/"), 30)
    return child


def _timed(n: int, call: Callable[[int], Any]) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"p50_ms": round(statistics.median(ms), 2), "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 2)}


def measure(kind: str, objects: int, size: int, tmp: Path) -> dict[str, Any]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    recording = tmp / f"{kind}.recording"
    data = tmp / f"{kind}.data"
    env = {"MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(recording)} if kind == "recorder" else {}

    def start() -> ChildProcess:
        if kind == "store":
            return start_s3(port, data_dir=data, log_path=tmp / f"{kind}.log")
        return _moto(port, env, tmp / f"{kind}.log")

    server = start()
    client = make_s3_client(endpoint)
    body = b"x" * size
    try:
        client.create_bucket(Bucket="bench")
        puts = _timed(objects, lambda i: client.put_object(Bucket="bench", Key=f"payloads/{i}", Body=body))
        gets = _timed(objects, lambda i: client.get_object(Bucket="bench", Key=f"payloads/{i}")["Body"].read())
        server.stop()
        t0 = time.perf_counter()
        server = start()
        if kind == "recorder":
            httpx.post(f"{endpoint}/moto-api/recorder/replay-recording", timeout=600).raise_for_status()
        back = time.perf_counter() - t0
        kept = client.list_objects_v2(Bucket="bench").get("KeyCount", 0) if kind != "memory" else 0
        footprint = sum(p.stat().st_size for p in tmp.glob(f"{kind}*") if p.is_file() and p.suffix != ".log")
        footprint += sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) if kind == "store" else 0
    finally:
        server.stop()
    return {
        "put": _summary(puts),
        "get": _summary(gets),
        "restart_s": round(back, 2),
        "objects_back": kept,
        "disk_bytes": footprint,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {kind: measure(kind, args.objects, args.size, Path(tmp)) for kind in ("memory", "recorder", "store")}
    report = {"objects": args.objects, "size": args.size, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "s3_persistence.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
