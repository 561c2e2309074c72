"""How S3 failures on a dataref are classified: transient ones are retried, the rest answered at once."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from core.s3 import S3Uri
from events.payloads import _classify

URI = S3Uri("payloads", "req/1.json")


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Get")


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (client_error("NoSuchKey", 404), "payload_not_found", False),
        (client_error("404", 404), "payload_not_found", False),
        (client_error("NotFound", 404), "payload_not_found", False),
        (client_error("NoSuchBucket", 404), "payload_not_found", False),
        (client_error("AccessDenied", 403), "invalid_event", False),
        (client_error("InvalidObjectState", 403), "invalid_event", False),
        (client_error("InternalError", 500), "unavailable", True),
        (client_error("ServiceUnavailable", 503), "unavailable", True),
        (client_error("SlowDown", 503), "unavailable", True),
        (client_error("RequestTimeout", 400), "unavailable", True),
        (client_error("Whatever", 502), "unavailable", True),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "unavailable", True),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), "unavailable", True),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), "unavailable", True),
    ],
)
def test_s3_failures_are_classified_as_transient_or_permanent(exc, code, retryable):
    classified = _classify(exc, URI)
    assert classified.code == code  # type: ignore[attr-defined]
    assert classified.retryable is retryable  # type: ignore[attr-defined]
    assert str(URI) in str(classified)
