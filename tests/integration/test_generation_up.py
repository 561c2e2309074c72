"""The generator through ``wakeserve up``: a stream to a function at zero is held open with keep-alives until
the replica wakes, then relayed token by token; the official ``openai`` client works through the gateway;
a client that leaves through the gateway cancels the request on the replica."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.integration.generation_support import counter, split_events
from tests.support.up import REPO, UpProcess, start_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOKEN = "generation-test-token"  # a test credential for the gateway, not a secret
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    tmp = tmp_path_factory.mktemp("generation-up")
    process = start_up(
        tmp,
        token=TOKEN,
        manifests=REPO / "manifests" / "base",
        env={"WAKESERVE_GATEWAY_KEEPALIVE_S": "0.3"},
        timeout=90,
    )
    yield process
    process.process.stop(60)


def replica_url(up: UpProcess) -> str:
    replicas = [r for r in up.function("generator")["pods"] if r["state"] == "ready"]
    return f"http://127.0.0.1:{replicas[0]['port']}"


def test_a_stream_to_a_function_at_zero_gets_keep_alives_then_tokens(up: UpProcess) -> None:
    assert up.function("generator")["ready"] == 0
    body = {"model": "generator", "messages": QUESTION, "temperature": 0, "max_tokens": 24, "stream": True}
    pieces: list[tuple[float, bytes]] = []
    started = time.monotonic()
    with (
        httpx.Client(base_url=up.url, headers=up.headers, timeout=180) as client,
        client.stream("POST", "/openai/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for piece in response.iter_raw():
            pieces.append((time.monotonic() - started, piece))
    raw = b"".join(p for _, p in pieces)
    before_data = raw[: raw.index(b"data: ")]
    assert before_data.startswith(b": waiting for a replica\n\n")
    assert before_data.count(b": keep-alive\n\n") >= 2  # the replica takes seconds to start and warm up
    events = split_events(raw)
    assert events[-1] == "[DONE]"
    docs = [json.loads(e) for e in events[:-1]]
    assert docs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(d["choices"][0]["delta"].get("content") or "" for d in docs)
    assert "Paris" in text
    assert docs[-1]["choices"][0]["finish_reason"] == "stop"


def test_the_openai_client_works_through_the_gateway(up: UpProcess) -> None:
    client = openai.OpenAI(base_url=f"{up.url}/openai/v1", api_key=TOKEN, max_retries=0, timeout=180)
    assert "generator" in [m.id for m in client.models.list()]
    answer = client.chat.completions.create(model="generator", messages=QUESTION, temperature=0, max_tokens=24)  # type: ignore[arg-type]
    assert "Paris" in (answer.choices[0].message.content or "")
    streamed = []
    for chunk in client.chat.completions.create(
        model="generator",
        messages=QUESTION,
        temperature=0,
        max_tokens=24,
        stream=True,
        n=2,  # type: ignore[arg-type]
    ):
        streamed.extend((c.index, c.delta.content or "") for c in chunk.choices)
    for index in (0, 1):
        assert "".join(t for i, t in streamed if i == index) == answer.choices[0].message.content
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=QUESTION)  # type: ignore[arg-type]
    wrong = openai.OpenAI(base_url=f"{up.url}/openai/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_a_client_that_leaves_the_gateway_cancels_on_the_replica(up: UpProcess) -> None:
    up.wait_for("generator awake", lambda s: s["functions"]["generator"]["ready"] >= 1, timeout=120)
    metrics = f"{replica_url(up)}/metrics"
    before = counter(httpx.get(metrics).text, "wakeserve_generation_cancelled_requests_total")
    body = {
        "model": "generator",
        "messages": [{"role": "user", "content": "Tell me a very long story."}],
        "max_tokens": 400,
        "ignore_eos": True,
        "stream": True,
    }
    with (
        httpx.Client(base_url=up.url, headers=up.headers, timeout=60) as client,
        client.stream("POST", "/openai/v1/chat/completions", json=body) as response,
    ):
        seen = 0
        for line in response.iter_lines():
            seen += line.startswith("data: ")
            if seen >= 4:
                break
    deadline = time.monotonic() + 15
    while counter(httpx.get(metrics).text, "wakeserve_generation_cancelled_requests_total") <= before:
        assert time.monotonic() < deadline, "the replica never saw the cancel"
        time.sleep(0.1)
    text = httpx.get(metrics).text
    assert counter(text, "wakeserve_generation_cancelled_tokens_not_generated_total") > 300
