"""A real replica's artifact cache against moto's S3 server: a version's files are checked against the size
limit from the listing before any download, and entries no version uses any more are evicted."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.replicas import Replica, start_replica

pytestmark = pytest.mark.integration
LIMIT = 4096


@pytest.fixture(scope="module")
def bucket(s3_server: Any) -> str:
    name = f"cache-{uuid.uuid4().hex[:8]}"
    client = s3_server.client()
    client.create_bucket(Bucket=name)
    versions = {"v1": b'{"version": "v1"}', "v2": b'{"version": "v2"}', "v3": b'{"version": "v3"}'}
    for prefix, config in versions.items():
        client.put_object(Bucket=name, Key=f"echo/{prefix}/config.json", Body=config)
    client.put_object(Bucket=name, Key="echo/huge/config.json", Body=b'{"version": "huge"}')
    client.put_object(Bucket=name, Key="echo/huge/padding.bin", Body=b"\0" * (LIMIT + 1))
    return name


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifact-cache")


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory, s3_server: Any, bucket: str, cache_dir: Path) -> Iterator[Replica]:
    env = {
        "WAKESERVE_S3_ENDPOINT": s3_server.endpoint,
        "WAKESERVE_MODEL_CACHE_DIR": str(cache_dir),
        "WAKESERVE_MODEL_URI_ALLOWLIST": f"s3://{bucket}/echo",
        "WAKESERVE_MAX_ARTIFACT_BYTES": str(LIMIT),
    }
    uri = f"s3://{bucket}/echo/v1"
    replica = start_replica("echo", tmp_path_factory.mktemp("cache-echo"), "--model-uri", uri, env=env)
    yield replica
    replica.process.stop()


def entries(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir() if not p.name.startswith("."))


def load(echo: Replica, body: dict[str, Any]) -> dict[str, Any]:
    url = f"{echo.admin_url}/wakeserve/models/echo/slots"
    answer = httpx.post(url, json=body, timeout=10)
    assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        slots = httpx.get(url, timeout=10).json()
        candidate, active = slots["candidate"], slots["active"]
        if candidate is not None and candidate["state"] in ("failed", "ready"):
            return dict(slots)
        if candidate is None and active["version"] == body["version"] and active["released"] is False:
            return dict(slots)
        time.sleep(0.05)
    raise AssertionError(f"no verdict: {slots}")


def wait_entries(cache_dir: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(found := entries(cache_dir)) == count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"cache holds {entries(cache_dir)}, expected {count} entries")


def test_a_retired_version_leaves_the_cache_and_an_oversized_one_never_enters_it(
    echo: Replica, bucket: str, cache_dir: Path
) -> None:
    (first,) = entries(cache_dir)
    promoted = load(echo, {"model_uri": f"s3://{bucket}/echo/v2", "version": "v2", "promote": True})
    assert promoted["active"]["version"] == "v2"
    (second,) = wait_entries(cache_dir, 1)  # v1's entry went with its slot
    assert second != first and json.loads((cache_dir / second / "config.json").read_text())["version"] == "v2"

    refused = load(echo, {"model_uri": f"s3://{bucket}/echo/huge", "version": "huge"})
    candidate = refused["candidate"]
    assert candidate["state"] == "failed" and "nothing was downloaded" in candidate["error"]
    assert f"over the limit of {LIMIT}" in candidate["error"]
    assert entries(cache_dir) == [second] and not list(cache_dir.glob(".partial-*"))

    gated = load(echo, {"model_uri": f"s3://{bucket}/echo/v3", "version": "v3"})
    assert gated["candidate"]["state"] == "ready" and len(entries(cache_dir)) == 2  # both versions in use
    httpx.post(f"{echo.admin_url}/wakeserve/models/echo/slots/abort", timeout=10).raise_for_status()
    assert wait_entries(cache_dir, 1) == [second]
    answer = httpx.post(
        f"{echo.url}/v2/models/echo/infer",
        json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.json()["model_version"] == "v2"
