"""The generator's bounds over HTTP on a replica with room for one sequence and two waiting requests: a full
queue answers 503 with Retry-After, and interactive requests overtake batch ones. That replica serves the
converted checkpoint as a ``--model-uri`` directory, as an image does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from functions.generator.artifact import packaged_checkpoint
from tests.integration.generation_support import counter
from tests.support.replicas import Replica, start_replica

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    checkpoint = packaged_checkpoint(Path.home() / ".cache" / "wakeserve" / "models" / ".converted")
    replica = start_replica(
        "generator",
        tmp_path_factory.mktemp("narrow"),
        "--max-batch-size", "1", "--max-queue", "2", "--model-uri", str(checkpoint), "--torch-threads", "1",
        timeout=240,
    )  # fmt: skip
    yield replica
    replica.process.stop()


def body(prompt: str, max_tokens: int, **extra: object) -> dict[str, object]:
    return {
        "model": "generator",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        **extra,
    }


def first_token_times(url: str, requests: dict[str, tuple[dict[str, object], dict[str, str]]]) -> dict[str, float]:
    """Send each request on its own thread in the given order (a little apart); when its first delta came."""
    seen: dict[str, float] = {}

    def run(name: str, payload: dict[str, object], headers: dict[str, str]) -> None:
        with (
            httpx.Client(base_url=url, timeout=120) as client,
            client.stream("POST", "/openai/v1/chat/completions", json=payload, headers=headers) as response,
        ):
            for line in response.iter_lines():
                if name not in seen and '"content":"' in line and '"content":""' not in line:
                    seen[name] = time.monotonic()

    threads = []
    for name, (payload, headers) in requests.items():
        threads.append(threading.Thread(target=run, args=(name, payload, headers)))
        threads[-1].start()
        time.sleep(0.3)  # arrival order is part of the scenario
    for thread in threads:
        thread.join(timeout=120)
    return seen


def test_interactive_requests_start_before_batch_requests_queued_earlier(narrow: Replica) -> None:
    order = first_token_times(
        narrow.url,
        {
            "running": (body("Tell me a story.", 40), {}),
            "batch": (body("List fruits.", 4, priority="batch"), {}),
            "interactive": (body("Say hi.", 4), {"wakeserve-priority": "interactive"}),
        },
    )
    assert set(order) == {"running", "batch", "interactive"}
    assert order["running"] < order["interactive"] < order["batch"]


def test_a_full_queue_is_a_503_with_retry_after(narrow: Replica) -> None:
    stop = threading.Event()

    def hold() -> None:
        with (
            httpx.Client(base_url=narrow.url, timeout=120) as client,
            client.stream("POST", "/openai/v1/chat/completions", json=body("Tell me a long story.", 200)) as response,
        ):
            for _ in response.iter_lines():
                if stop.is_set():
                    return

    holders = [threading.Thread(target=hold) for _ in range(3)]  # one runs, two wait: the queue is full
    for thread in holders:
        thread.start()
    try:
        with httpx.Client(base_url=narrow.url, timeout=30) as client:
            deadline = time.monotonic() + 30
            while counter(client.get("/metrics").text, "wakeserve_generation_waiting_requests") < 2:
                assert time.monotonic() < deadline, "the two waiting requests never queued"
                time.sleep(0.05)
            answer = client.post("/openai/v1/chat/completions", json={**body("x", 4), "stream": False})
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        error = answer.json()["error"]
        assert error["type"] == "service_unavailable" and "waiting" in error["message"]
    finally:
        stop.set()
        for thread in holders:
            thread.join(timeout=60)


def test_a_model_uri_directory_is_served_under_its_own_version(narrow: Replica) -> None:
    answer = httpx.post(
        f"{narrow.url}/v2/models/generator/generate", json={"text_input": "Hello", "parameters": {"max_tokens": 2}}
    ).json()
    checkpoint = packaged_checkpoint(Path.home() / ".cache" / "wakeserve" / "models" / ".converted")
    assert answer["model_version"] == checkpoint.name
    assert answer["finish_reason"] in ("stop", "length")
