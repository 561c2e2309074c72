"""The remote invoker against a real HTTP server on loopback: what it sends, and how each answer is classified."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from core.errors import (
    InvalidInputError,
    ModelError,
    PayloadTooLargeError,
    TransientError,
    UnknownModelError,
    WakeserveError,
)
from core.processes import free_port
from events.invokers import RemoteInvoker

BODY = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]})


@dataclass
class ModelServer:
    """Answers ``POST /v2/models/{function}/infer`` with what ``answers[function]`` says; records each request."""

    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)  # "hang" answers once it is set
    url: str = ""


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    state = ModelServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            state.requests.append((self.path, self.headers.get("content-type", ""), body))
            function = self.path.split("/")[3]
            if function == "hang":
                state.release.wait(10)
            status, content = state.answers.get(function, (200, b"{}"))
            self.send_response(status)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="model-server", daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join(10)


async def call(url: str, function: str, *, timeout: float = 10.0) -> tuple[bytes, str]:
    invoker = RemoteInvoker(url, timeout=timeout)
    try:
        return await invoker.infer(function, BODY, priority=1)
    finally:
        await invoker.close()


def test_a_200_returns_the_body_and_the_model_version(model_server: ModelServer) -> None:
    answer = orjson.dumps({"model_name": "ok", "model_version": "v7", "outputs": []})
    model_server.answers["ok"] = (200, answer)
    content, version = asyncio.run(call(model_server.url, "ok"))
    assert (content, version) == (answer, "v7")
    assert model_server.requests[-1] == ("/v2/models/ok/infer", "application/json", BODY)  # the body, unchanged


@pytest.mark.parametrize(
    ("content", "version"),
    [
        (b'{"outputs": []}', ""),
        (b'{"model_version": null}', ""),
        (b'{"model_version": 3}', "3"),
    ],
    ids=["absent", "null", "number"],
)
def test_a_200_without_a_textual_version_gives_a_string(model_server: ModelServer, content: bytes, version: str):
    model_server.answers["versions"] = (200, content)
    assert asyncio.run(call(model_server.url, "versions")) == (content, version)


@pytest.mark.parametrize(
    ("status", "content", "error", "reason"),
    [
        (400, b'{"error": "tensor x: expected FP32"}', InvalidInputError, "tensor x: expected FP32"),
        (404, b'{"error": "no model f"}', UnknownModelError, "no model f"),
        (413, b'{"error": "body over 1 MiB"}', PayloadTooLargeError, "body over 1 MiB"),
        (422, b'{"error": "unprocessable"}', InvalidInputError, "unprocessable"),
        (429, b'{"error": "slow down"}', TransientError, "slow down"),
        (500, b'{"error": "CUDA out of memory"}', ModelError, "CUDA out of memory"),
        (501, b'{"error": "not here"}', ModelError, "not here"),
        (502, b"<html>bad gateway</html>", TransientError, "<html>bad gateway</html>"),
        (503, b'{"error": "queue is full", "retryable": true}', TransientError, "queue is full"),
        (504, b"", TransientError, "504: "),
        (500, b'{"detail": "no error key"}', ModelError, '{"detail": "no error key"}'),
        (500, b'["not", "an", "object"]', ModelError, '["not", "an", "object"]'),
    ],
    ids=lambda v: str(v) if isinstance(v, int) else None,
)
def test_an_error_status_becomes_the_error_of_that_class_with_the_reason(
    model_server: ModelServer, status: int, content: bytes, error: type[WakeserveError], reason: str
) -> None:
    model_server.answers["failing"] = (status, content)
    with pytest.raises(error) as raised:
        asyncio.run(call(model_server.url, "failing"))
    assert type(raised.value) is error
    assert raised.value.message.startswith(f"model server answered {status}: ")
    assert reason in raised.value.message
    # Only overload and unavailability may pass on a retry; the rest fail the event for good.
    assert raised.value.retryable is (status in (429, 502, 503, 504))


def test_a_200_that_is_not_a_v2_response_is_a_model_error(model_server: ModelServer) -> None:
    model_server.answers["garbled"] = (200, b"<html>ok</html>")
    with pytest.raises(ModelError, match="not a v2 inference response") as raised:
        asyncio.run(call(model_server.url, "garbled"))
    assert raised.value.retryable is False


def test_a_server_that_does_not_answer_in_time_is_transient(model_server: ModelServer) -> None:
    with pytest.raises(TransientError, match="model server unreachable: ReadTimeout") as raised:
        asyncio.run(call(model_server.url, "hang", timeout=0.2))
    assert raised.value.retryable and raised.value.status == 503


def test_nothing_listening_is_transient() -> None:
    with pytest.raises(TransientError, match="model server unreachable: ConnectError") as raised:
        asyncio.run(call(f"http://127.0.0.1:{free_port()}", "any"))
    assert raised.value.retryable
