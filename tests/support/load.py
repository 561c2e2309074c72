"""Continuous echo traffic for lifecycle tests: HTTP calls and events, every answer recorded with its version."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
import orjson

from events import cloudevent
from tests.integration.async_support import request_event


@dataclass(frozen=True)
class Answer:
    sent: float
    done: float
    status: int
    version: str | None
    correct: bool


def echo_body(i: int) -> dict[str, object]:
    return {"id": f"r{i}", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [i % 1000, 1.5]}]}


@dataclass
class EchoLoad:
    """``workers`` clients calling ``/v2/models/echo/infer`` back to back, plus one event every ``event_every_s``."""

    url: str
    headers: dict[str, str]
    workers: int = 3
    event_every_s: float = 0.05
    answers: list[Answer] = field(default_factory=list)
    events: list[cloudevent.CloudEvent] = field(default_factory=list)
    event_failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> EchoLoad:
        for w in range(self.workers):
            self._threads.append(threading.Thread(target=self._calls, args=(w,), daemon=True))
        if self.event_every_s:
            self._threads.append(threading.Thread(target=self._events, daemon=True))
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _calls(self, worker: int) -> None:
        with httpx.Client(headers=self.headers, timeout=30) as client:
            i = worker * 1_000_000
            while not self._stop.is_set() and i < worker * 1_000_000 + 200_000:
                i += 1
                body = echo_body(i)
                sent = time.monotonic()
                try:
                    r = client.post(f"{self.url}/v2/models/echo/infer", json=body)
                    status, doc = r.status_code, (r.json() if r.status_code == 200 else {})
                except httpx.HTTPError:
                    status, doc = 0, {}
                data = doc.get("outputs", [{}])[0].get("data") if doc else None
                answer = Answer(sent, time.monotonic(), status, doc.get("model_version"), data == [i % 1000, 1.5])
                with self._lock:
                    self.answers.append(answer)

    def _events(self) -> None:
        with httpx.Client(headers=self.headers, timeout=30) as client:
            while not self._stop.is_set() and len(self.events) < 5000:
                event = request_event("echo", data=orjson.dumps(echo_body(len(self.events))))
                headers, body = cloudevent.to_http(event)
                try:
                    r = client.post(f"{self.url}/events", content=body, headers=headers)
                    if r.status_code == 202:
                        self.events.append(event)
                    else:
                        self.event_failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    self.event_failures.append(repr(exc))
                self._stop.wait(self.event_every_s)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)
