from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from core.errors import InvalidEventError, PayloadNotFoundError, UnknownModelError
from events import contract
from events.cloudevent import CloudEvent

BASE = {"specversion": "1.0", "id": "r1", "source": "/s", "type": contract.REQUEST_TYPE, "model": "embedder"}


def event(data: bytes | None = b"{}", **changes: str | None) -> CloudEvent:
    attributes = {**BASE, **changes}
    return CloudEvent({k: v for k, v in attributes.items() if v is not None}, data)


@pytest.mark.parametrize(
    ("ev", "error", "message"),
    [
        (event(type="other"), InvalidEventError, "requests must have type"),
        (event(model=None), InvalidEventError, "'model' extension"),
        (event(model="nope"), UnknownModelError, "no function named 'nope'"),
        (event(data=None), InvalidEventError, "neither data"),
        (event(dataref="s3://b/k"), InvalidEventError, "either inline data or a dataref"),
        (event(data=None, dataref="http://b/k"), InvalidEventError, "must be an s3://"),
        (event(data=None, dataref="s3://b"), InvalidEventError, "no object key"),
        (event(datacontenttype="text/plain"), InvalidEventError, "must be application/json"),
        (event(deadline="soon"), InvalidEventError, "RFC 3339"),
        (event(deadline="2026-01-01T00:00:00"), InvalidEventError, "time zone"),
        (event(priority="urgent"), InvalidEventError, "priority must be one of"),
    ],
)
def test_invalid_requests(ev, error, message):
    with pytest.raises(error, match=message):
        contract.parse_request(ev, frozenset({"embedder", "classifier"}))


@pytest.mark.parametrize(
    ("ev", "dataref", "deadline", "priority"),
    [
        (event(), None, None, 1),
        (event(data=None, dataref="s3://b/k/x.json"), "s3://b/k/x.json", None, 1),
        (event(deadline="2030-01-01T00:00:00Z", priority="high"), None, datetime(2030, 1, 1, tzinfo=UTC), 0),
        (event(priority="low", datacontenttype="application/json; charset=utf-8"), None, None, 2),
    ],
)
def test_valid_requests(ev, dataref, deadline, priority):
    request = contract.parse_request(ev, frozenset({"embedder"}))
    assert (str(request.dataref) if request.dataref else None) == dataref
    assert request.deadline == deadline and request.priority == priority


@pytest.mark.parametrize(
    ("deadline", "expired"), [(None, False), ("2020-01-01T00:00:00Z", True), ("2099-01-01T00:00:00+02:00", False)]
)
def test_expiry(deadline, expired):
    assert contract.expired(contract.parse_request(event(deadline=deadline))) is expired


def test_result_and_error_events_carry_request_context():
    request = event(partitionkey="k", traceparent="00-abc-def-01", tracestate="x=1")
    result = contract.result_event(request, "/ws", "v3", data=b'{"id": "r1"}')
    assert result.type == contract.RESULT_TYPE
    assert {
        k: result.get(k) for k in ("requestid", "model", "modelversion", "partitionkey", "traceparent", "tracestate")
    } == {
        "requestid": "r1",
        "model": "embedder",
        "modelversion": "v3",
        "partitionkey": "k",
        "traceparent": "00-abc-def-01",
        "tracestate": "x=1",
    }
    referenced = contract.result_event(request, "/ws", "v3", dataref="s3://r/k")
    assert referenced.data is None and referenced.get("dataref") == "s3://r/k"
    error = contract.error_event(request, "/ws", PayloadNotFoundError("gone"))
    assert error.type == contract.ERROR_TYPE and error.get("partitionkey") == "k"
    assert orjson.loads(error.data) == {"code": "payload_not_found", "message": "gone", "retryable": False}


def test_dead_letter_keeps_the_original_and_adds_the_error():
    original = [("ce_id", b"r1"), ("ce_errorcode", b"stale")]
    headers = contract.dead_letter_headers(original, PayloadNotFoundError("gone"))
    assert headers == [("ce_id", b"r1"), ("ce_errorcode", b"payload_not_found"), ("ce_errormessage", b"gone")]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (event(), event(), True),
        (event(), event(id="r2"), False),
        (event(), event(source="/other"), False),
        (event(id="../../etc"), event(id="__.._etc"), False),
    ],
)
def test_result_keys_are_stable_per_request(a, b, same):
    key = contract.result_key("embedder", a)
    assert key.startswith("results/embedder/") and ".." not in key
    assert (key == contract.result_key("embedder", b)) is same


def test_reply_time_is_rfc3339_utc_now_and_ids_differ():
    before = datetime.now(UTC)
    replies = [contract.result_event(event(), "/ws", "v1", data=b"{}") for _ in range(3)]
    after = datetime.now(UTC)
    for reply in replies:
        stamp = reply.get("time")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
        assert before - timedelta(seconds=1) <= datetime.fromisoformat(stamp.replace("Z", "+00:00")) <= after
    assert len({r.get("id") for r in replies}) == 3
