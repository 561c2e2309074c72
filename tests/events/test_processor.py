"""Retry and reply rules of the processor, with scripted stand-ins for the model and the payload store.

The real model, broker and S3 are exercised in tests/integration/test_async.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from core.errors import InvalidInputError, ModelError, TransientError
from core.s3 import S3Uri
from events import contract
from events.cloudevent import CloudEvent
from events.processor import EventProcessor, RetryPolicy


class ScriptedInvoker:
    def __init__(self, failures: list[Exception], response: bytes = b'{"id": "x"}') -> None:
        self.failures = list(failures)
        self.response = response
        self.calls = 0

    async def infer(self, function: str, body: bytes, priority: int) -> tuple[bytes, str]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.response, "v1"


class Store:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def check(self, uri: S3Uri) -> None:
        pass

    async def fetch(self, uri: S3Uri) -> bytes:
        return self.objects[str(uri)]

    async def put_result(self, key: str, body: bytes) -> str:
        self.objects[f"s3://results/{key}"] = body
        return f"s3://results/{key}"


def processor(invoker, store=None, limit=1000, attempts=3):
    async def no_sleep(_: float) -> None:
        await asyncio.sleep(0)

    return EventProcessor(
        frozenset({"m"}),
        invoker,
        store or Store(),
        source="/t",
        inline_result_limit=limit,
        retry=RetryPolicy(attempts, 1, 10),
        sleep=no_sleep,
    )


def request(**extra: str) -> CloudEvent:
    return CloudEvent(
        {"specversion": "1.0", "id": "r", "source": "/s", "type": contract.REQUEST_TYPE, "model": "m", **extra}, b"{}"
    )


@pytest.mark.parametrize(
    ("failures", "calls", "code"),
    [
        ([], 1, None),
        ([TransientError("503")], 2, None),
        ([TransientError("503")] * 2, 3, None),
        ([TransientError("503")] * 3, 3, "unavailable"),  # retries run out
        ([InvalidInputError("bad")], 1, "invalid_input"),  # permanent: no retry
        ([ModelError("boom")], 1, "model_error"),
    ],
)
def test_retries_are_bounded_and_only_for_transient_failures(failures, calls, code):
    invoker = ScriptedInvoker(failures)
    outcome = asyncio.run(processor(invoker).process(request()))
    assert invoker.calls == calls
    if code is None:
        assert outcome.error is None and outcome.reply.type == contract.RESULT_TYPE
    else:
        assert outcome.error is not None and orjson.loads(outcome.reply.data)["code"] == code


def test_expired_request_is_not_run():
    invoker = ScriptedInvoker([])
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    outcome = asyncio.run(processor(invoker).process(request(deadline=past)))
    assert invoker.calls == 0 and outcome.error is not None and outcome.error.code == "expired"


def test_large_results_go_to_the_store_by_reference():
    store = Store()
    invoker = ScriptedInvoker([], response=b"x" * 2000)
    outcome = asyncio.run(processor(invoker, store, limit=1000).process(request()))
    ref = outcome.reply.get("dataref")
    assert ref and store.objects[ref] == b"x" * 2000 and outcome.reply.data is None


def test_undecodable_record_still_gets_an_error_reply_naming_it():
    outcome = asyncio.run(processor(ScriptedInvoker([])).process_record([("ce_id", b"abc")], b"key", b"junk"))
    assert outcome.error is not None and outcome.error.code == "invalid_event"
    assert outcome.reply.get("requestid") == "abc" and outcome.reply.get("partitionkey") == "key"


STRUCTURED = [("content-type", b"application/cloudevents+json")]


@pytest.mark.parametrize(
    ("headers", "key", "value", "requestid", "partitionkey", "says"),
    [
        pytest.param(
            [("ce_id", b"abc"), ("ce_specversion", b"0.3")], None, b"{}", "abc", None, "missing required", id="binary"
        ),
        pytest.param(
            STRUCTURED,
            b"k",
            orjson.dumps({"specversion": "1.0", "id": "s1", "type": "t"}),
            "s1",
            "k",
            "missing required attribute(s): source",
            id="structured-missing-source",
        ),
        pytest.param(
            [("content-type", b"application/json")],
            None,
            orjson.dumps({"id": "s2", "source": "/s", "partitionkey": "p"}),
            "s2",
            "p",
            "no ce_ headers",
            id="json-object-without-specversion",
        ),
        pytest.param(
            STRUCTURED,
            None,
            orjson.dumps({"specversion": "1.0", "id": 7, "source": "/s", "type": "t", "x": [1]}),
            "7",
            None,
            "attribute values",
            id="numeric-id",
        ),
        pytest.param(STRUCTURED, b"k", b"{nope", "", "k", "not valid JSON", id="unreadable"),
    ],
)
def test_an_invalid_record_gets_an_error_event_with_the_id_it_gives(headers, key, value, requestid, partitionkey, says):
    outcome = asyncio.run(processor(ScriptedInvoker([])).process_record(headers, key, value))
    assert outcome.error is not None and outcome.error.code == "invalid_event" and says in outcome.error.message
    assert outcome.reply.type == contract.ERROR_TYPE
    assert (outcome.reply.get("requestid"), outcome.reply.get("partitionkey")) == (requestid, partitionkey)


def test_a_valid_event_that_breaks_the_contract_is_answered_with_its_id():
    headers = [(f"ce_{k}", v.encode()) for k, v in request().attributes.items()] + [("ce_dataref", b"s3://b/k")]
    outcome = asyncio.run(processor(ScriptedInvoker([])).process_record(headers, None, b"{}"))
    assert outcome.error is not None and "either inline data or a dataref" in outcome.error.message
    assert outcome.reply.get("requestid") == "r"
