"""The wakeserve event contract (docs/events.md): request, result, error and dead-letter events.

Pure functions: no I/O, so every rule is tested with tables.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from core.errors import InvalidEventError, UnknownModelError, WakeserveError
from core.ids import new_id
from core.s3 import S3Uri
from events.cloudevent import CloudEvent

REQUEST_TYPE = "dev.wakeserve.inference.request"
RESULT_TYPE = "dev.wakeserve.inference.result"
ERROR_TYPE = "dev.wakeserve.inference.error"
PROPAGATED = ("partitionkey", "traceparent", "tracestate")
PRIORITIES = {"high": 0, "normal": 1, "low": 2}


@dataclass(frozen=True)
class Topics:
    """Topic names; the defaults are the contract's."""

    prefix: str = "wakeserve"
    results: str = "wakeserve.results"
    deadletter: str = "wakeserve.deadletter"

    def requests(self, function: str) -> str:
        return f"{self.prefix}.{function}.requests"

    def group(self, function: str) -> str:
        return f"{self.prefix}-{function}"


@dataclass(frozen=True)
class InferenceRequest:
    """A validated request event."""

    event: CloudEvent
    model: str
    dataref: S3Uri | None
    deadline: datetime | None
    priority: int

    @property
    def id(self) -> str:
        return self.event.id


def parse_time(value: str, attribute: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidEventError(f"'{attribute}' is not an RFC 3339 time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise InvalidEventError(f"'{attribute}' needs a time zone offset (RFC 3339): {value!r}")
    return parsed


def parse_request(event: CloudEvent, known_models: frozenset[str] | None = None) -> InferenceRequest:
    """Validate a request event against the contract; raise the error that names the first problem."""
    if event.type != REQUEST_TYPE:
        raise InvalidEventError(f"type is {event.type!r}; requests must have type {REQUEST_TYPE!r}")
    model = event.get("model")
    if not model:
        raise InvalidEventError("the 'model' extension attribute (the function name) is missing")
    if known_models is not None and model not in known_models:
        raise UnknownModelError(f"no function named {model!r}; known: {', '.join(sorted(known_models))}")
    dataref_text = event.get("dataref")
    dataref = None
    if dataref_text is not None:
        if event.data:
            raise InvalidEventError("an event carries either inline data or a dataref, not both")
        try:
            dataref = S3Uri.parse(dataref_text)
        except ValueError as exc:
            raise InvalidEventError(f"dataref must be an s3://bucket/key URI, got {dataref_text!r}") from exc
        if not dataref.key:
            raise InvalidEventError(f"dataref has no object key: {dataref_text!r}")
    elif not event.data:
        raise InvalidEventError("the event has neither data (a v2 inference request) nor a dataref")
    else:
        content_type = (event.get("datacontenttype") or "application/json").split(";")[0].strip()
        if content_type != "application/json":
            raise InvalidEventError(f"inline data must be application/json, got {content_type!r}")
    deadline_text = event.get("deadline")
    deadline = parse_time(deadline_text, "deadline") if deadline_text else None
    priority_text = event.get("priority", "normal") or "normal"
    if priority_text not in PRIORITIES:
        raise InvalidEventError(f"priority must be one of {sorted(PRIORITIES)}, got {priority_text!r}")
    return InferenceRequest(event, model, dataref, deadline, PRIORITIES[priority_text])


def expired(request: InferenceRequest, now: datetime | None = None) -> bool:
    return request.deadline is not None and (now or datetime.now(UTC)) >= request.deadline


_second: tuple[int, str] = (-1, "")


def _now() -> str:
    """RFC 3339 UTC time with microseconds; the part up to the second is formatted once per second."""
    global _second
    now = time.time()
    whole = int(now)
    second = _second
    if second[0] != whole:
        second = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{second[1]}.{int((now - whole) * 1_000_000):06d}Z"


def _reply(request_event: CloudEvent, event_type: str, source: str) -> dict[str, str]:
    attributes = {
        "specversion": "1.0",
        "id": new_id(),
        "source": source,
        "type": event_type,
        "time": _now(),
        "requestid": request_event.get("id") or "",
    }
    model = request_event.get("model")
    if model:
        attributes["model"] = model
    for name in PROPAGATED:
        value = request_event.get(name)
        if value:
            attributes[name] = value
    return attributes


def result_event(
    request: CloudEvent, source: str, model_version: str, *, data: bytes | None = None, dataref: str | None = None
) -> CloudEvent:
    """The result: the v2 InferenceResponse inline, or a ``dataref`` to it in S3."""
    attributes = _reply(request, RESULT_TYPE, source)
    attributes["modelversion"] = model_version
    if dataref is not None:
        attributes["dataref"] = dataref
        return CloudEvent(attributes, None)
    attributes["datacontenttype"] = "application/json"
    return CloudEvent(attributes, data)


def error_event(request: CloudEvent, source: str, error: WakeserveError) -> CloudEvent:
    attributes = _reply(request, ERROR_TYPE, source)
    attributes["datacontenttype"] = "application/json"
    body = {"code": error.code, "message": error.message, "retryable": error.retryable}
    return CloudEvent(attributes, orjson.dumps(body))


def dead_letter_headers(headers: list[tuple[str, bytes]], error: WakeserveError) -> list[tuple[str, bytes]]:
    """The original record's headers, unchanged, plus the error as extension attributes."""
    kept = [(k, v) for k, v in headers if k not in ("ce_errorcode", "ce_errormessage")]
    return [*kept, ("ce_errorcode", error.code.encode()), ("ce_errormessage", error.message[:1000].encode())]


_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def result_key(function: str, request: CloudEvent) -> str:
    """Where a large result is stored: the same for every delivery of the same (source, id)."""
    source_hash = hashlib.sha256(request.get("source", "").encode()).hexdigest()[:16]  # type: ignore[union-attr]
    request_id = request.get("id") or ""
    safe_id = _SAFE.sub("_", request_id)[:100] + "-" + hashlib.sha256(request_id.encode()).hexdigest()[:8]
    return f"results/{function}/{source_hash}/{safe_id}.json"
