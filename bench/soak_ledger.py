"""The books of a fault soak: every request sent, what became of it, tallied per fault.

A request is *answered* (a 200 for a v2 call; one or more results on the results topic for an accepted event,
an error result included), *failed* with a clear error (the gateway or ingress refused it with a reason, or the
connection was refused while ``up`` was down: the caller knows it must retry), or *lost*: an event the ingress
accepted (202) that never got a result. The asynchronous path is at least once, so an event may get more than
one result; those are *duplicated* and listed by id. Pure bookkeeping, no I/O, so it is tested with tables.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    id: str
    kind: str  # "sync" or "event"
    sent_at: float
    accepted: bool = False
    error: str | None = None
    answered_at: float | None = None
    results: int = 0
    error_results: int = 0

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def lost(self) -> bool:
        return self.kind == "event" and self.accepted and not self.answered


@dataclass(frozen=True)
class Fault:
    name: str
    at: float


@dataclass
class Ledger:
    requests: dict[str, Request] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sent(self, request_id: str, kind: str, at: float) -> None:
        with self._lock:
            self.requests[request_id] = Request(request_id, kind, at)

    def accepted(self, request_id: str) -> None:
        with self._lock:
            self.requests[request_id].accepted = True

    def failed(self, request_id: str, error: str) -> None:
        with self._lock:
            self.requests[request_id].error = error

    def answered(self, request_id: str, at: float, *, error: bool = False) -> None:
        """A 200 for a v2 call, or one result event for an event (called once per result seen)."""
        with self._lock:
            request = self.requests.get(request_id)
            if request is None:
                return
            request.results += 1
            request.error_results += int(error)
            if request.answered_at is None:
                request.answered_at = at

    def accepted_events(self) -> set[str]:
        with self._lock:
            return {r.id for r in self.requests.values() if r.kind == "event" and r.accepted}

    def tally(self, faults: Sequence[Fault], end: float) -> list[dict[str, Any]]:
        """One row per window: before the first fault ("baseline"), then each fault until the next one."""
        bounds = [Fault("baseline", float("-inf")), *sorted(faults, key=lambda f: f.at)]
        rows = []
        with self._lock:
            requests = list(self.requests.values())
        for i, fault in enumerate(bounds):
            until = bounds[i + 1].at if i + 1 < len(bounds) else end
            window = [r for r in requests if fault.at <= r.sent_at < until]
            rows.append({"fault": fault.name, "at": None if i == 0 else fault.at, **summarise(window, fault.at)})
        return rows


def summarise(window: Sequence[Request], since: float) -> dict[str, Any]:
    answered = [r for r in window if r.answered]
    # Recovered: the first answer to a request sent after the window's last failure (or after the fault).
    last_failure = max((r.sent_at for r in window if r.error is not None and not r.answered), default=since)
    recovered = min((r.answered_at for r in answered if r.sent_at >= last_failure and r.answered_at), default=None)
    return {
        "sent": len(window),
        "answered": len(answered),
        "error_results": sum(1 for r in answered if r.error_results),
        "failed_clear": sum(1 for r in window if not r.answered and r.error is not None),
        "lost": sorted(r.id for r in window if r.lost),
        "duplicated": sorted(r.id for r in window if r.kind == "event" and r.results > 1),
        "unresolved": sorted(r.id for r in window if not r.answered and r.error is None and not r.lost),
        "recover_s": None if recovered is None or since == float("-inf") else round(recovered - since, 2),
    }
