"""Start real ``wakeserve serve`` replicas for tests, stop them by pid."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.processes import ChildProcess, free_port, replica_argv


@dataclass
class Replica:
    """A running predictor process and what was seen while it started."""

    process: ChildProcess
    http_port: int
    grpc_port: int
    admin_port: int
    startup: list[tuple[int, int]] = field(default_factory=list)  # (live status, ready status) per poll

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def admin_url(self) -> str:
        """The admin listener: control API, startup timeline, OpenAPI."""
        return f"http://127.0.0.1:{self.admin_port}"


def _status(client: httpx.Client, path: str) -> int:
    try:
        return client.get(path).status_code
    except httpx.HTTPError:
        return 0


def start_replica(
    function: str, tmp: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> Replica:
    http_port, grpc_port, admin_port = free_port(), free_port(), free_port()
    argv = replica_argv(function, http_port, grpc_port, *args)
    env = {"WAKESERVE_ADMIN_PORT": str(admin_port), **(env or {})}
    process = ChildProcess(f"replica-{function}", argv, env=env, log_path=tmp / f"{function}-{http_port}.log")
    replica = Replica(process, http_port, grpc_port, admin_port)
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=replica.url, timeout=2) as client:
        while time.monotonic() < deadline:
            live, ready = _status(client, "/v2/health/live"), _status(client, "/v2/health/ready")
            if live:
                replica.startup.append((live, ready))
            if ready == 200:
                return replica
            if not process.alive():
                break
            time.sleep(0.02)
    process.stop()
    log = (tmp / f"{function}-{http_port}.log").read_text(errors="replace")[-3000:]
    raise RuntimeError(f"replica {function} did not become ready:\n{log}")
