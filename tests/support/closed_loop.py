"""Saturating traffic from a foreign client: tritonclient's HTTP client in ``clients`` threads, each sending its
next call as soon as the previous one is answered, every answer recorded with the version that produced it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tritonclient.http as triton


@dataclass(frozen=True)
class Call:
    sent: float
    latency_s: float
    ok: bool
    version: str | None
    error: str = ""


def text_inputs() -> list[triton.InferInput]:
    tensor = triton.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"where is my parcel"], dtype=object))
    return [tensor]


def echo_inputs() -> list[triton.InferInput]:
    tensor = triton.InferInput("x", [1, 4], "FP32")
    tensor.set_data_from_numpy(np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32))
    return [tensor]


@dataclass
class ClosedLoop:
    """``clients`` tritonclient HTTP clients calling ``model`` on ``host_port`` back to back until stopped."""

    host_port: str
    model: str
    inputs: Callable[[], list[triton.InferInput]]
    clients: int = 4
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> ClosedLoop:
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def wait_for(self, what: str, condition: Callable[[list[Call]], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self.snapshot()):
                return
            self._stop.wait(0.05)
        raise AssertionError(f"{what}: not after {timeout}s ({len(self.snapshot())} calls)")

    def _client(self) -> None:
        # One client per thread: tritonclient's HTTP client is not safe to share between threads.
        client = triton.InferenceServerClient(url=self.host_port, network_timeout=60, connection_timeout=60)
        inputs = self.inputs()
        try:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    result = client.infer(self.model, inputs)
                    call = Call(sent, time.monotonic() - sent, True, result.get_response().get("model_version"))
                except Exception as exc:  # any failed call is what the tests count
                    call = Call(sent, time.monotonic() - sent, False, None, str(exc))
                with self._lock:
                    self.calls.append(call)
        finally:
            client.close()
