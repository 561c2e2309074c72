"""CloudEvents 1.0 in the Kafka and HTTP protocol bindings: binary, structured and batched modes.

A small codec of our own so that every decoding failure becomes an :class:`InvalidEventError` naming the
problem, and so that no binding quirk (such as requiring ``time``) leaks into the contract. It reads what the
CloudEvents Python SDK (1.x) writes, whose encoding of "no data" and of Kafka structured mode departs from the
bindings in three ways (docs/events.md, "Producers"): a JSON ``null`` body or ``"data": null`` is no data; a
record without ``ce_`` headers whose value is a JSON object with ``specversion`` is structured, whatever its
``content-type``; the record key stands in for a missing ``partitionkey``.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.errors import InvalidEventError

REQUIRED = ("specversion", "id", "source", "type")
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_NAME = re.compile(r"^[a-z0-9]{1,20}$")
KafkaHeaders = list[tuple[str, bytes]]
# The HTTP binding (3.1.3.2) leaves printable ASCII as is, except space, '"' and '%'; everything else is the
# percent-encoded UTF-8 bytes. The same set is safe in any HTTP server's header check.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


@dataclass
class CloudEvent:
    """Context attributes (all as strings) and the raw data bytes."""

    attributes: dict[str, str]
    data: bytes | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attributes.get(name, default)

    @property
    def id(self) -> str:
        return self.attributes["id"]

    @property
    def type(self) -> str:
        return self.attributes["type"]

    @property
    def source(self) -> str:
        return self.attributes["source"]


_VALID_NAMES: set[str] = set()  # names already checked; bounded below


def _valid_name(name: str) -> bool:
    if not _NAME.match(name):
        return False
    if len(_VALID_NAMES) < 1024:
        _VALID_NAMES.add(name)
    return True


def _check(attributes: dict[str, str]) -> None:
    missing = [a for a in REQUIRED if not attributes.get(a)]
    if missing:
        raise InvalidEventError(f"CloudEvent is missing required attribute(s): {', '.join(missing)}")
    if attributes["specversion"] != "1.0":
        raise InvalidEventError(f"unsupported specversion {attributes['specversion']!r}; expected '1.0'")
    bad = [name for name in attributes if name not in _VALID_NAMES and not _valid_name(name)]
    if bad:
        raise InvalidEventError(f"invalid attribute name(s) {bad}: lower-case letters and digits, at most 20")


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()
    raise InvalidEventError(f"attribute values must be strings, numbers or booleans, got {type(value).__name__}")


def from_structured(doc: Any) -> CloudEvent:
    """One event from a structured-mode JSON object."""
    if not isinstance(doc, dict):
        raise InvalidEventError("a structured CloudEvent must be a JSON object")
    attributes = {k: _as_text(v) for k, v in doc.items() if k not in ("data", "data_base64")}
    _check(attributes)
    data: bytes | None = None
    if "data_base64" in doc:
        try:
            data = base64.b64decode(doc["data_base64"], validate=True)
        except (ValueError, TypeError) as exc:
            raise InvalidEventError(f"data_base64 is not valid base64: {exc}") from exc
    elif doc.get("data") is not None:
        value = doc["data"]
        if isinstance(value, str) and not attributes.get("datacontenttype", "application/json").endswith("json"):
            data = value.encode()
        else:
            data = orjson.dumps(value)
            attributes.setdefault("datacontenttype", "application/json")
    return CloudEvent(attributes, data)


def _parse_json(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError(f"{what} is not valid JSON: {exc}") from exc


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _binary_data(body: bytes | None, content_type: str | None) -> bytes | None:
    """The data of a binary-mode message: none for an empty body, or for a JSON ``null`` (the SDK's "no data")."""
    if not body:
        return None
    if (content_type is None or _is_json(content_type)) and body.strip() == b"null":
        return None
    return body


def json_object(value: bytes | None) -> dict[str, Any] | None:
    """``value`` parsed, when it is a JSON object; None for anything else (no exception)."""
    if not value or value.lstrip()[:1] != b"{":
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def from_kafka(headers: Iterable[tuple[str, bytes | None]], key: bytes | None, value: bytes | None) -> CloudEvent:
    """Binary mode (``ce_*`` headers) or structured mode (``content-type: application/cloudevents+json``, or a
    record without ``ce_`` headers whose value is a CloudEvent JSON object)."""
    pairs = [(k.lower(), v or b"") for k, v in headers]
    content_type = next((v.decode("latin-1") for k, v in pairs if k == "content-type"), None)
    if content_type and content_type.split(";")[0].strip() == STRUCTURED:
        event = from_structured(_parse_json(value or b"", "structured CloudEvent"))
    else:
        try:
            attributes = {k[3:]: v.decode("utf-8") for k, v in pairs if k.startswith("ce_")}
        except UnicodeDecodeError as exc:
            raise InvalidEventError("a ce_ header is not UTF-8") from exc
        if attributes:
            if content_type:
                attributes["datacontenttype"] = content_type
            _check(attributes)
            event = CloudEvent(attributes, _binary_data(value, content_type))
        elif (doc := json_object(value)) is not None and "specversion" in doc:
            event = from_structured(doc)
        else:
            raise InvalidEventError("record has no ce_ headers and is not a structured CloudEvent")
    if key is not None and "partitionkey" not in event.attributes:
        event.attributes["partitionkey"] = key.decode("utf-8", errors="replace")
    return event


def to_kafka(event: CloudEvent) -> tuple[KafkaHeaders, bytes | None, bytes | None]:
    """Binary mode: headers, key (``partitionkey``) and value."""
    headers: KafkaHeaders = []
    for name, value in event.attributes.items():
        if name == "datacontenttype":
            headers.append(("content-type", value.encode()))
        elif name != "partitionkey":
            headers.append((f"ce_{name}", value.encode()))
    key = event.attributes.get("partitionkey")
    return headers, key.encode() if key is not None else None, event.data


def encode_header(value: str) -> str:
    """An attribute value as an HTTP header value (CloudEvents HTTP binding, 3.1.3.2)."""
    return urllib.parse.quote(value, safe=_HEADER_SAFE, encoding="utf-8")


def decode_header(name: str, value: str) -> str:
    """The attribute value of a ``ce-*`` header: a quoted string unquoted, then one round of percent-decoding.

    ``value`` is as the server decoded it (latin-1, one character per byte), so a sender that wrote UTF-8
    without percent-encoding it is read correctly too; bytes that are not UTF-8 are refused.
    """
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return urllib.parse.unquote(value)  # already text (an in-process caller), only percent-decoded
    try:
        return urllib.parse.unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEventError(f"header ce-{name} is not UTF-8 once percent-decoded") from exc


def from_http(headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
    """Binary (``ce-*`` headers), structured, or batched HTTP request into events."""
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "").split(";")[0].strip()
    if content_type == BATCH:
        docs = _parse_json(body, "CloudEvents batch")
        if not isinstance(docs, list) or not docs:
            raise InvalidEventError("a CloudEvents batch must be a non-empty JSON array")
        return [from_structured(d) for d in docs]
    if content_type == STRUCTURED:
        return [from_structured(_parse_json(body, "structured CloudEvent"))]
    attributes = {k[3:]: decode_header(k[3:], v) for k, v in lowered.items() if k.startswith("ce-")}
    if not attributes:
        raise InvalidEventError(
            f"not a CloudEvent: send ce-* headers (binary mode) or content-type {STRUCTURED} or {BATCH}"
        )
    if content_type:
        attributes["datacontenttype"] = lowered["content-type"]
    _check(attributes)
    return [CloudEvent(attributes, _binary_data(body, attributes.get("datacontenttype")))]


def to_http(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Binary mode HTTP headers (attribute values percent-encoded) and body."""
    headers = {"content-type": event.attributes.get("datacontenttype", "application/json")}
    for name, value in event.attributes.items():
        if name != "datacontenttype":
            headers[f"ce-{name}"] = encode_header(value)
    return headers, event.data or b""


def to_structured(event: CloudEvent) -> dict[str, Any]:
    """A JSON-ready structured-mode object (data inlined when it is JSON, else base64)."""
    doc: dict[str, Any] = dict(event.attributes)
    if event.data is not None:
        if event.attributes.get("datacontenttype", "").endswith("json"):
            doc["data"] = orjson.loads(event.data)
        else:
            doc["data_base64"] = base64.b64encode(event.data).decode()
    return doc
