from __future__ import annotations

import base64

import orjson
import pytest

from core.errors import InvalidEventError
from events import cloudevent
from events.cloudevent import CloudEvent

BASE = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}


def kafka_headers(**attrs: str) -> list[tuple[str, bytes]]:
    return [(f"ce_{k}", v.encode()) for k, v in attrs.items()]


@pytest.mark.parametrize(
    ("headers", "key", "value", "attributes", "data"),
    [
        (kafka_headers(**BASE), None, b"x", BASE, b"x"),
        (
            [*kafka_headers(**BASE), ("content-type", b"application/json")],
            b"k",
            b"{}",
            {**BASE, "datacontenttype": "application/json", "partitionkey": "k"},
            b"{}",
        ),
        (
            [("content-type", b"application/cloudevents+json")],
            None,
            orjson.dumps({**BASE, "model": "m", "data": {"a": 1}}),
            {**BASE, "model": "m", "datacontenttype": "application/json"},
            b'{"a":1}',
        ),
        (
            [("content-type", b"application/cloudevents+json; charset=utf-8")],
            None,
            orjson.dumps({**BASE, "data_base64": base64.b64encode(b"\x00\x01").decode()}),
            BASE,
            b"\x00\x01",
        ),
        (
            [("content-type", b"application/cloudevents+json")],
            None,
            orjson.dumps({**BASE, "n": 3, "b": True}),
            {**BASE, "n": "3", "b": "true"},
            None,
        ),
    ],
    ids=["binary", "binary-key-ct", "structured-json", "structured-base64", "structured-typed-ext"],
)
def test_from_kafka(headers, key, value, attributes, data):
    event = cloudevent.from_kafka(headers, key, value)
    assert event.attributes == attributes
    assert event.data == data


@pytest.mark.parametrize(
    ("headers", "value", "message"),
    [
        ([], b"x", "no ce_ headers"),
        (kafka_headers(id="1", source="/s", type="t"), b"x", "missing required attribute(s): specversion"),
        (kafka_headers(**{**BASE, "specversion": "0.3"}), b"x", "unsupported specversion"),
        ([*kafka_headers(**BASE), ("ce_bad-name", b"x")], b"x", "invalid attribute name"),
        ([*kafka_headers(**BASE), ("ce_" + "a" * 21, b"x")], b"x", "invalid attribute name"),
        ([("content-type", b"application/cloudevents+json")], b"{nope", "not valid JSON"),
        ([("content-type", b"application/cloudevents+json")], b"[1]", "must be a JSON object"),
        (
            [("content-type", b"application/cloudevents+json")],
            orjson.dumps({**BASE, "x": {"a": 1}}),
            "attribute values",
        ),
        ([("content-type", b"application/cloudevents+json")], orjson.dumps({**BASE, "data_base64": "%%"}), "base64"),
        ([("ce_id", b"\xff"), *kafka_headers(specversion="1.0", source="/s", type="t")], b"", "not UTF-8"),
    ],
)
def test_from_kafka_rejects(headers, value, message):
    cloudevent.from_kafka(kafka_headers(**BASE, model="m", partitionkey="k"), None, b"")  # valid names are cached
    with pytest.raises(InvalidEventError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cloudevent.from_kafka(headers, None, value)


def test_kafka_round_trip_keeps_attributes_key_and_data():
    event = CloudEvent({**BASE, "partitionkey": "p", "datacontenttype": "application/json", "model": "m"}, b"{}")
    headers, key, value = cloudevent.to_kafka(event)
    assert key == b"p" and ("content-type", b"application/json") in headers
    assert cloudevent.from_kafka(headers, key, value) == event


@pytest.mark.parametrize(
    ("headers", "body", "count"),
    [
        ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}, b"x", 1),
        ({"Content-Type": "application/cloudevents+json"}, orjson.dumps(BASE), 1),
        ({"content-type": "application/cloudevents-batch+json"}, orjson.dumps([BASE, {**BASE, "id": "2"}]), 2),
    ],
)
def test_from_http_modes(headers, body, count):
    events = cloudevent.from_http(headers, body)
    assert len(events) == count
    assert all(e.type == "t" for e in events)


def test_http_binary_round_trip():
    event = CloudEvent({**BASE, "datacontenttype": "application/json", "requestid": "9"}, b'{"a": 1}')
    headers, body = cloudevent.to_http(event)
    assert headers["content-type"] == "application/json" and headers["ce-requestid"] == "9"
    assert cloudevent.from_http(headers, body) == [event]
    assert cloudevent.to_structured(event)["data"] == {"a": 1}


JSON_CT = ("content-type", b"application/json")


@pytest.mark.parametrize(
    ("headers", "key", "value", "attributes", "data"),
    [
        pytest.param(
            [*kafka_headers(**BASE), JSON_CT],
            None,
            b"null",
            {**BASE, "datacontenttype": "application/json"},
            None,
            id="binary-json-null-is-no-data",
        ),
        pytest.param(kafka_headers(**BASE), None, b" null\n", BASE, None, id="binary-null-without-content-type"),
        pytest.param(
            [*kafka_headers(**BASE), ("content-type", b"text/plain")],
            None,
            b"null",
            {**BASE, "datacontenttype": "text/plain"},
            b"null",
            id="binary-text-null-is-text",
        ),
        pytest.param(kafka_headers(**BASE), None, b"", BASE, None, id="binary-empty-is-no-data"),
        pytest.param(
            [JSON_CT],
            b"k",
            orjson.dumps({**BASE, "datacontenttype": "application/json", "data": None}),
            {**BASE, "datacontenttype": "application/json", "partitionkey": "k"},
            None,
            id="structured-by-body-data-null",
        ),
        pytest.param(
            [],
            None,
            orjson.dumps({**BASE, "data": {"a": 1}}),
            {**BASE, "datacontenttype": "application/json"},
            b'{"a":1}',
            id="structured-by-body-without-headers",
        ),
        pytest.param(
            [("content-type", b"application/cloudevents+json")],
            None,
            orjson.dumps({**BASE, "data": None}),
            BASE,
            None,
            id="structured-data-null",
        ),
        pytest.param(
            [JSON_CT],
            b"key",
            orjson.dumps({**BASE, "partitionkey": "body"}),
            {**BASE, "partitionkey": "body"},
            None,
            id="partitionkey-attribute-wins-over-key",
        ),
        pytest.param(
            [*kafka_headers(**BASE), ("ce_partitionkey", b"header")],
            b"key",
            b"x",
            {**BASE, "partitionkey": "header"},
            b"x",
            id="partitionkey-header-wins-over-key",
        ),
    ],
)
def test_from_kafka_reads_what_the_sdk_writes(headers, key, value, attributes, data):
    event = cloudevent.from_kafka(headers, key, value)
    assert (event.attributes, event.data) == (attributes, data)


@pytest.mark.parametrize(
    "value",
    [b"{}", orjson.dumps({"id": "1", "source": "/s"}), b"[1]", b'"text"', b"{nope"],
    ids=["empty-object", "object-without-specversion", "array", "string", "not-json"],
)
def test_a_record_without_ce_headers_is_structured_only_with_specversion(value):
    with pytest.raises(InvalidEventError, match="no ce_ headers and is not a structured CloudEvent"):
        cloudevent.from_kafka([JSON_CT], None, value)


@pytest.mark.parametrize(
    ("body", "data"),
    [(b"null", None), (b"", None), (b'{"a": 1}', b'{"a": 1}')],
    ids=["null", "empty", "json"],
)
def test_from_http_binary_json_null_is_no_data(body, data):
    headers = {"content-type": "application/json", **{f"ce-{k}": v for k, v in BASE.items()}}
    (event,) = cloudevent.from_http(headers, body)
    assert event.data == data


@pytest.mark.parametrize(
    ("value", "header"),
    [
        ("plain-id.42/a:b", "plain-id.42/a:b"),
        ("Euro € 😀", "Euro%20%E2%82%AC%20%F0%9F%98%80"),
        ("line\nbreak\ttab", "line%0Abreak%09tab"),
        ('say "hi" 100%', "say%20%22hi%22%20100%25"),
        ("del\x7f", "del%7F"),
        ("", ""),
    ],
    ids=["printable", "non-ascii", "control", "quote-space-percent", "del", "empty"],
)
def test_http_header_values_are_percent_encoded_and_decoded(value: str, header: str) -> None:
    event = CloudEvent({"specversion": "1.0", "id": "e1", "source": "/s", "type": "t", "subject": value}, b"{}")
    headers, _ = cloudevent.to_http(event)
    assert headers["ce-subject"] == header
    assert all(0x21 <= ord(c) < 0x7F for c in header)  # safe in any server's header check
    (decoded,) = cloudevent.from_http(headers, b"{}")
    assert decoded.attributes["subject"] == value


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("caf%c3%a9", "café"),  # lower-case hex is accepted
        ("%41%42", "AB"),  # needlessly encoded
        ('"quoted \\"value\\""', 'quoted "value"'),  # a quoted string of older senders
        ("50%off", "50%off"),  # not an escape: left as it is
        ("caf\xc3\xa9", "café"),  # raw UTF-8 as the server hands it over (one character per byte)
    ],
    ids=["lower-case", "needless", "quoted-string", "lone-percent", "raw-utf8"],
)
def test_from_http_decodes_header_values(header: str, value: str) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "e1", "ce-source": "/s", "ce-type": "t", "ce-subject": header}
    (event,) = cloudevent.from_http(headers, b"")
    assert event.attributes["subject"] == value


@pytest.mark.parametrize("header", ["%C0%A0", "%FF", "\xe9t\xe9"], ids=["overlong", "not-utf8", "latin-1"])
def test_from_http_refuses_header_values_that_are_not_utf8(header: str) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": header, "ce-source": "/s", "ce-type": "t"}
    with pytest.raises(InvalidEventError, match="ce-id is not UTF-8"):
        cloudevent.from_http(headers, b"")
