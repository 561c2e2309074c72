"""The generator on a real replica with real weights, through the clients its users hold: the official
``openai`` client, raw SSE bytes, and plain HTTP for the v2 generate extension."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.generation_support import SOLO_PROMPTS, counter, post_stream
from tests.support.replicas import Replica, start_replica

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CAPITAL = "What is the capital of France? Answer in one sentence."


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    # One torch thread: with two, a step waits for whichever thread another process has descheduled, and a test
    # run beside other work crawls (the benchmark measures two).
    replica = start_replica("generator", tmp_path_factory.mktemp("generator"), "--torch-threads", "1", timeout=240)
    yield replica
    replica.process.stop()


@pytest.fixture(scope="module")
def client(generator: Replica) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{generator.url}/openai/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def http(generator: Replica) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=generator.url, timeout=120) as c:
        yield c


def chat(client: openai.OpenAI, prompt: str, **kwargs: object) -> openai.types.chat.ChatCompletion:
    messages = [{"role": "user", "content": prompt}]
    return client.chat.completions.create(model="generator", messages=messages, **kwargs)  # type: ignore[call-overload, no-any-return]


def streamed_text(client: openai.OpenAI, prompt: str, **kwargs: object) -> tuple[str, str | None]:
    text, reason = [], None
    for chunk in chat(client, prompt, stream=True, **kwargs):  # type: ignore[union-attr]
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            reason = choice.finish_reason or reason
    return "".join(text), reason


def test_models_lists_the_generator(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["generator"]
    assert client.models.retrieve("generator").id == "generator"


def test_greedy_answer_is_what_generate_gives_alone(client: openai.OpenAI) -> None:
    import torch

    from functions.generation.causal_lm import CausalLM
    from functions.generation.schema import Message
    from functions.generator.artifact import packaged_checkpoint

    lm = CausalLM(packaged_checkpoint(Path.home() / ".cache" / "wakeserve" / "models" / ".converted"))
    threads = torch.get_num_threads()
    for prompt in (CAPITAL, "Name a famous painter."):
        ids = torch.tensor([lm.encode_chat([Message(role="user", content=prompt)])])
        torch.set_num_threads(1)  # as the replica runs
        try:
            with torch.inference_mode():
                out = lm.model.generate(ids, max_new_tokens=40, do_sample=False)
        finally:
            torch.set_num_threads(threads)
        expected = lm.decode(out[0, ids.shape[1] :].tolist())
        answer = chat(client, prompt, temperature=0, max_tokens=40)
        assert answer.choices[0].message.content == expected
    assert "Paris" in chat(client, CAPITAL, temperature=0, max_tokens=40).choices[0].message.content  # type: ignore[operator]


def test_non_streaming_chat_and_completion_carry_usage(client: openai.OpenAI) -> None:
    answer = chat(client, CAPITAL, temperature=0, max_tokens=40)
    assert answer.object == "chat.completion"
    assert answer.choices[0].finish_reason == "stop"
    usage = answer.usage
    assert usage is not None and usage.prompt_tokens > 10 and usage.completion_tokens > 3
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    completion = client.completions.create(
        model="generator", prompt="The capital of France is", temperature=0, max_tokens=5
    )
    assert completion.object == "text_completion" and completion.choices[0].text.strip()
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    assert completion.choices[0].finish_reason == "length"


def test_streaming_equals_non_streaming(client: openai.OpenAI) -> None:
    whole = chat(client, "Describe a cat.", temperature=0, max_tokens=24).choices[0]
    text, reason = streamed_text(client, "Describe a cat.", temperature=0, max_tokens=24)
    assert text == whole.message.content and reason == whole.finish_reason


def test_stop_strings_end_the_text_before_them(client: openai.OpenAI) -> None:
    full = chat(client, CAPITAL, temperature=0, max_tokens=40).choices[0].message.content
    assert full is not None and " is " in full
    stopped = chat(client, CAPITAL, temperature=0, max_tokens=40, stop=[" is "]).choices[0]
    assert stopped.message.content == full[: full.index(" is ")]
    assert stopped.finish_reason == "stop"
    text, reason = streamed_text(client, CAPITAL, temperature=0, max_tokens=40, stop=[" is "])
    assert (text, reason) == (stopped.message.content, "stop")


def test_max_tokens_ends_with_length(client: openai.OpenAI) -> None:
    answer = chat(client, "Tell me a long story about a dragon.", temperature=0, max_tokens=7)
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 7


def test_seed_reproduces_sampled_text_and_n_gives_indexed_choices(client: openai.OpenAI) -> None:
    kwargs = {"temperature": 1.0, "top_p": 0.95, "max_tokens": 24, "n": 2, "seed": 1234}
    first = chat(client, "Invent a name for a new colour.", **kwargs)
    second = chat(client, "Invent a name for a new colour.", **kwargs)
    assert [c.index for c in first.choices] == [0, 1]
    assert [c.message.content for c in first.choices] == [c.message.content for c in second.choices]
    other = chat(client, "Invent a name for a new colour.", **{**kwargs, "seed": 99})
    assert [c.message.content for c in other.choices] != [c.message.content for c in first.choices]
    assert first.usage is not None and first.usage.completion_tokens <= 48


def test_sixteen_concurrent_streams_each_equal_their_solo_run(client: openai.OpenAI) -> None:
    solo = [chat(client, p, temperature=0, max_tokens=32).choices[0].message.content for p in SOLO_PROMPTS]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda p: streamed_text(client, p, temperature=0, max_tokens=32)[0], SOLO_PROMPTS))
    assert together == solo


def test_a_client_that_leaves_cancels_its_request_within_a_step(
    generator: Replica, client: openai.OpenAI, http: httpx.Client
) -> None:
    before = http.get("/metrics").text
    other: dict[str, str] = {}
    solo_other = chat(client, "Who wrote Hamlet?", temperature=0, max_tokens=48).choices[0].message.content

    def run_other() -> None:
        other["text"] = streamed_text(client, "Who wrote Hamlet?", temperature=0, max_tokens=48)[0]

    thread = threading.Thread(target=run_other)
    thread.start()
    body = {
        "model": "generator",
        "messages": [{"role": "user", "content": "Tell me a very long story."}],
        "max_tokens": 400,
        "ignore_eos": True,
        "stream": True,
        "temperature": 0,
    }
    deltas = 0
    with http.stream("POST", "/openai/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                deltas += 1
            if deltas >= 3:
                break  # leaving the block closes the connection
    deadline = time.monotonic() + 10
    while True:
        after = http.get("/metrics").text
        cancelled = counter(after, "wakeserve_generation_cancelled_requests_total") - counter(
            before, "wakeserve_generation_cancelled_requests_total"
        )
        if cancelled >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert cancelled == 1
    late = counter(after, "wakeserve_generation_tokens_after_cancel_total") - counter(
        before, "wakeserve_generation_tokens_after_cancel_total"
    )
    assert late <= 1  # at most the step that was running when the cancel arrived
    saved = counter(after, "wakeserve_generation_cancelled_tokens_not_generated_total") - counter(
        before, "wakeserve_generation_cancelled_tokens_not_generated_total"
    )
    assert saved > 300
    generated_then = counter(after, "wakeserve_generation_tokens_total")
    thread.join(timeout=120)
    assert other["text"] == solo_other
    # Nothing more was generated for the cancelled request: the other stream's tokens at most.
    generated_now = counter(http.get("/metrics").text, "wakeserve_generation_tokens_total")
    assert generated_now - generated_then <= 48


def test_raw_stream_framing_matches_openai(http: httpx.Client) -> None:
    body = {
        "model": "generator",
        "messages": [{"role": "user", "content": "Count to five."}],
        "max_tokens": 12,
        "n": 2,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    stream = post_stream(http, "/openai/v1/chat/completions", body)
    assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
    assert stream.events[-1] == "[DONE]" and stream.raw.endswith(b"data: [DONE]\n\n")
    docs = stream.documents()
    assert {d["id"] for d in docs} == {docs[0]["id"]} and docs[0]["object"] == "chat.completion.chunk"
    chunks, usage_chunk = docs[:-1], docs[-1]
    assert usage_chunk["choices"] == [] and all(d["usage"] is None for d in chunks)
    for index in (0, 1):
        mine = [d["choices"][0] for d in chunks if d["choices"][0]["index"] == index]
        assert all(len(d["choices"]) == 1 for d in chunks)
        assert mine[0]["delta"] == {"role": "assistant", "content": ""}
        finals = [c for c in mine if c["finish_reason"] is not None]
        assert len(finals) == 1 and finals[0] is mine[-1] and finals[0]["finish_reason"] == "length"
    usage = usage_chunk["usage"]
    assert usage["completion_tokens"] == 24 and usage["total_tokens"] == usage["prompt_tokens"] + 24


def test_completion_stream_framing(http: httpx.Client) -> None:
    body = {"model": "generator", "prompt": "Once upon a time", "max_tokens": 6, "temperature": 0, "stream": True}
    stream = post_stream(http, "/openai/v1/completions", body)
    docs = stream.documents()
    assert stream.events[-1] == "[DONE]"
    assert all(d["object"] == "text_completion" and "usage" not in d for d in docs)
    assert [d["choices"][0]["finish_reason"] for d in docs][-1] == "length"
    assert sum(1 for d in docs if d["choices"][0]["finish_reason"]) == 1


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/openai/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "nope"),
        ("/openai/v1/chat/completions", {"model": "generator", "messages": []}, 400, "messages"),
        (
            "/openai/v1/chat/completions",
            {"model": "generator", "messages": [{"role": "user", "content": "x"}], "temperature": 3},
            400,
            "temperature",
        ),
        (
            "/openai/v1/chat/completions",
            {"model": "generator", "messages": [{"role": "user", "content": "x"}], "n": 0},
            400,
            "n",
        ),
        (
            "/openai/v1/chat/completions",
            {"model": "generator", "messages": [{"role": "user", "content": "x"}], "max_tokens": 100000},
            400,
            "context",
        ),
        (
            "/openai/v1/chat/completions",
            {"model": "generator", "messages": [{"role": "user", "content": "x"}], "logprobs": True},
            400,
            "logprobs",
        ),
        (
            "/openai/v1/chat/completions",
            {"model": "generator", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]},
            400,
            "stop",
        ),
        (
            "/openai/v1/chat/completions",
            {"model": "generator", "messages": [{"role": "tool", "content": "x"}]},
            400,
            "role",
        ),
        (
            "/openai/v1/chat/completions",
            {"model": "generator", "messages": [{"role": "user", "content": "x"}], "priority": "urgent"},
            400,
            "priority",
        ),
        ("/openai/v1/completions", {"model": "generator", "prompt": ["a", "b"]}, 400, "one prompt"),
        ("/openai/v1/completions", {"model": "generator"}, 400, "prompt"),
        ("/v2/models/generator/generate", {"parameters": {}}, 400, "text_input"),
        ("/v2/models/generator/generate", {"text_input": "x", "parameters": {"top_p": 0}}, 400, "top_p"),
        ("/v2/models/nope/generate", {"text_input": "x"}, 404, "nope"),
    ],
)
def test_bad_input_is_a_4xx_with_a_reason(
    http: httpx.Client, path: str, body: dict[str, object], status: int, needle: str
) -> None:
    for stream in (False, True):
        answer = http.post(path, json={**body, "stream": True} if stream and path.startswith("/openai") else body)
        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        message = error["message"] if isinstance(error, dict) else error
        assert needle in message
        if path.startswith("/openai"):
            assert set(error) == {"message", "type", "param", "code"}


def test_invalid_json_is_a_400(http: httpx.Client) -> None:
    answer = http.post(
        "/openai/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400 and "JSON" in answer.json()["error"]["message"]


@pytest.mark.parametrize("temperature", [0.0, 0.7])
@pytest.mark.parametrize("top_p", [1.0, 0.5])
@pytest.mark.parametrize("max_tokens", [1, 8])
@pytest.mark.parametrize("n", [1, 2])
def test_parameter_grid_invariants(
    client: openai.OpenAI, temperature: float, top_p: float, max_tokens: int, n: int
) -> None:
    answer = chat(client, "Say something.", temperature=temperature, top_p=top_p, max_tokens=max_tokens, n=n, seed=7)
    assert [c.index for c in answer.choices] == list(range(n))
    assert all(c.finish_reason in ("stop", "length") for c in answer.choices)
    usage = answer.usage
    assert usage is not None and 1 <= usage.completion_tokens <= n * max_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if all(c.finish_reason == "length" for c in answer.choices):
        assert usage.completion_tokens == n * max_tokens
    if temperature == 0.0 and n == 2:
        assert answer.choices[0].message.content == answer.choices[1].message.content


def test_v2_generate_and_generate_stream(http: httpx.Client) -> None:
    body = {"text_input": "The capital of France is", "parameters": {"max_tokens": 6}}
    whole = http.post("/v2/models/generator/generate", json=body).json()
    assert whole["model_name"] == "generator" and whole["model_version"]
    assert whole["finish_reason"] == "length" and whole["text_output"]
    stream = post_stream(http, "/v2/models/generator/generate_stream", body)
    docs = stream.documents()
    assert "[DONE]" not in stream.events
    assert "".join(d["text_output"] for d in docs) == whole["text_output"]
    assert [d["finish_reason"] for d in docs][-1] == "length"


def test_v2_infer_answers_text_output(http: httpx.Client) -> None:
    request = {"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1], "data": [CAPITAL]}]}
    answer = http.post("/v2/models/generator/infer", json=request).json()
    assert answer["outputs"][0]["name"] == "text_output" and "Paris" in answer["outputs"][0]["data"][0]


def test_metrics_name_the_generation_series(http: httpx.Client) -> None:
    text = http.get("/metrics").text
    for name in (
        "wakeserve_generation_time_to_first_token_seconds_bucket",
        "wakeserve_generation_inter_token_seconds_bucket",
        "wakeserve_generation_tokens_total",
        "wakeserve_generation_prompt_tokens_total",
        "wakeserve_generation_running_sequences",
        "wakeserve_generation_waiting_requests",
        "wakeserve_generation_cancelled_requests_total",
    ):
        assert f"{name}{{" in text, name
    assert counter(text, "wakeserve_generation_tokens_total") > 0
