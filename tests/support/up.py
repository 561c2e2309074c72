"""Run a real ``wakeserve up`` for tests: its own embedded broker and S3, free ports, short scaling periods."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from core.processes import ChildProcess, free_port
from events.settings import EventSettings

REPO = Path(__file__).resolve().parents[2]

ECHO_MANIFESTS = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: echo
  labels: {wakeserve.dev/function: echo}
  annotations:
    autoscaling.knative.dev/target-utilization-percentage: "100"
    autoscaling.knative.dev/window: "6s"
    autoscaling.knative.dev/initial-scale: "0"
spec:
  predictor:
    minReplicas: 0
    maxReplicas: 3
    scaleMetric: concurrency
    scaleTarget: 2
    containers:
      - name: kserve-container
        image: wakeserve
        args: ["serve", "echo"]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: echo
  labels: {wakeserve.dev/function: echo}
spec:
  scaleTargetRef: {name: echo-predictor}
  pollingInterval: 1
  cooldownPeriod: 3
  minReplicaCount: 0
  maxReplicaCount: 3
  triggers:
    - type: kafka
      metadata:
        topic: wakeserve.echo.requests
        consumerGroup: wakeserve-echo
        lagThreshold: "20"
        offsetResetPolicy: earliest
"""


def manifests_with_echo(tmp: Path, echo_min_replicas: int = 0) -> Path:
    """The repository's manifests plus a trivial function scaled on tight parameters."""
    root = tmp / "manifests"
    shutil.copytree(REPO / "manifests" / "base", root)
    echo = ECHO_MANIFESTS.replace("minReplicas: 0", f"minReplicas: {echo_min_replicas}")
    (root / "echo.yaml").write_text(echo.replace("minReplicaCount: 0", f"minReplicaCount: {echo_min_replicas}"))
    return root


@dataclass
class UpProcess:
    process: ChildProcess
    url: str
    token: str | None
    kafka_bootstrap: str
    s3_endpoint: str
    state_dir: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def admin_headers(self) -> dict[str, str]:
        """The replicas' admin token, as ``up`` wrote it into its context file for this machine's operator."""
        context = json.loads((self.state_dir / "context.json").read_text())
        return {"authorization": f"Bearer {context['admin_token']}"}

    def settings(self) -> EventSettings:
        return EventSettings(kafka_bootstrap=self.kafka_bootstrap, s3_endpoint=self.s3_endpoint)

    def status(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/wakeserve/status", headers=self.headers, timeout=5)
        response.raise_for_status()
        return dict(response.json())

    def function(self, name: str) -> dict[str, Any]:
        return dict(self.status()["functions"][name])

    def wait_for(self, what: str, check: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        """Poll the status until ``check`` holds; fail with the last status."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status()
            if check(status):
                return status
            time.sleep(0.1)
        raise AssertionError(f"not {what} after {timeout}s: {status}")

    def descendants(self) -> list[int]:
        try:
            return [p.pid for p in psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def start_up(
    tmp: Path,
    *extra: str,
    token: str | None = None,
    timeout: float = 60,
    echo_min_replicas: int = 0,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
    manifests: Path | None = None,
) -> UpProcess:
    """``manifests``: the directory to run; by default the repository's plus the echo function."""
    http, kafka, s3 = free_port(), free_port(), free_port()
    manifests = manifests or manifests_with_echo(tmp, echo_min_replicas)
    env = {**(env or {}), **({"WAKESERVE_GATEWAY_TOKEN": token} if token else {})}
    return _launch(tmp, (http, kafka, s3), manifests, tmp / "state", token, env, cwd, extra, timeout)


def restart_up(previous: UpProcess, tmp: Path, *extra: str, timeout: float = 90) -> UpProcess:
    """Stop ``previous`` (SIGTERM, as Ctrl-C would) and start ``up`` again on its ports and state directory.

    ``tmp`` is the directory ``previous`` was started with: its manifests and log are reused.
    """
    previous.process.stop(60)
    ports = tuple(int(u.rsplit(":", 1)[1]) for u in (previous.url, previous.kafka_bootstrap, previous.s3_endpoint))
    env = {"WAKESERVE_GATEWAY_TOKEN": previous.token} if previous.token else {}
    return _launch(tmp, ports, tmp / "manifests", previous.state_dir, previous.token, env, REPO, extra, timeout)


def _launch(
    tmp: Path,
    ports: tuple[int, ...],
    manifests: Path,
    state_dir: Path,
    token: str | None,
    env: dict[str, str],
    cwd: Path,
    extra: tuple[str, ...],
    timeout: float,
) -> UpProcess:
    """Start ``wakeserve up`` on loopback ``ports`` (gateway, broker, S3) and wait until its gateway answers."""
    http, kafka, s3 = ports
    argv = [
        sys.executable, "-m", "wakeserve", "up", "--quiet",
        "--http-port", str(http), "--kafka-port", str(kafka), "--s3-port", str(s3), "--scaler-port", "0",
        "--manifests", str(manifests), "--state-dir", str(state_dir), *extra,
    ]  # fmt: skip
    process = ChildProcess("wakeserve-up", argv, env=env, log_path=tmp / "up.log", cwd=cwd)
    up = UpProcess(
        process, f"http://127.0.0.1:{http}", token, f"127.0.0.1:{kafka}", f"http://127.0.0.1:{s3}", state_dir
    )

    def serving() -> bool:
        try:
            return httpx.get(f"{up.url}/wakeserve/status", headers=up.headers, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        process.wait_until(serving, timeout)
    except Exception:
        process.stop()
        raise
    return up
