"""Expected failures of a command become one line naming what was tried and what to set; bugs keep tracebacks."""

from __future__ import annotations

import os
from pathlib import Path

import botocore.exceptions as boto
import httpx
import pytest
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, UnknownTopicOrPartitionError
from pydantic import BaseModel, ValidationError

from core.errors import UnauthorizedError
from core.processes import free_port
from events.client import IngressRejectedError
from wakeserve import cli
from wakeserve.context import Context, ContextError
from wakeserve.embedded import MissingLocalPartsError
from wakeserve.endpoints import Endpoint, Resolution, Source
from wakeserve.failures import explain

STATE = Path("/srv/state")
CONTEXT = Context(pid=1, gateway_url="http://127.0.0.1:18080", ingress_url="-", kafka_bootstrap="127.0.0.1:19092")


def resolution(source: Source) -> Resolution:
    found = Resolution(STATE, CONTEXT if source is Source.CONTEXT else None)
    values = {
        Source.DEFAULT: ("127.0.0.1:9092", None, "http://127.0.0.1:8080"),
        Source.CONTEXT: ("127.0.0.1:19092", "http://127.0.0.1:19000", "http://127.0.0.1:18080"),
        Source.ENV: ("env:9092", "http://env:9000", "http://127.0.0.1:7000"),
        Source.FLAG: ("flag:9092", "http://flag:9000", "http://flag:8080"),
    }[source]
    found.endpoints = {
        "kafka_bootstrap": Endpoint("Kafka", values[0], source, "--kafka-bootstrap", "WAKESERVE_KAFKA_BOOTSTRAP"),
        "s3_endpoint": Endpoint("S3", values[1], source, "--s3-endpoint", "WAKESERVE_S3_ENDPOINT"),
        "gateway": Endpoint("the gateway", values[2], source, "--url", "WAKESERVE_HTTP_PORT"),
    }
    return found


def connect_error(url: str) -> httpx.ConnectError:
    return httpx.ConnectError("refused", request=httpx.Request("GET", url))


def status_error(code: int, body: dict[str, str]) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://127.0.0.1:18080/wakeserve/status")
    return httpx.HTTPStatusError("x", request=request, response=httpx.Response(code, json=body, request=request))


class _Port(BaseModel):
    http_port: int


def validation_error() -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        _Port(http_port="eighty")  # type: ignore[arg-type]
    return caught.value


CASES = [
    # (exception, where the endpoints came from, every fragment the line must hold)
    (KafkaTimeoutError("Unable to bootstrap"), Source.DEFAULT,
     ["cannot reach Kafka at 127.0.0.1:9092", "no running `wakeserve up` found in /srv/state", "WAKESERVE_KAFKA_BOOTSTRAP"]),
    (KafkaConnectionError("refused"), Source.CONTEXT,
     ["cannot reach Kafka at 127.0.0.1:19092", "/srv/state/context.json", "still serving"]),
    (KafkaTimeoutError("Unable to bootstrap"), Source.FLAG, ["Kafka at flag:9092", "from --kafka-bootstrap", "check --kafka-bootstrap"]),
    (UnknownTopicOrPartitionError("no topic"), Source.ENV, ["Kafka at env:9092 failed"]),
    (boto.NoCredentialsError(), Source.DEFAULT, ["no S3 credentials for AWS", "start `wakeserve up`", "AWS_ACCESS_KEY_ID"]),
    (boto.NoCredentialsError(), Source.FLAG, ["no S3 credentials for http://flag:9000 (from --s3-endpoint)", "AWS_SECRET_ACCESS_KEY"]),
    (boto.EndpointConnectionError(endpoint_url="https://bucket.s3.amazonaws.com/requests/x.json"), Source.DEFAULT,
     ["cannot reach S3 at https://bucket.s3.amazonaws.com (the default", "--s3-endpoint or WAKESERVE_S3_ENDPOINT"]),
    (boto.EndpointConnectionError(endpoint_url="http://env:9000/b/k"), Source.ENV,
     ["cannot reach S3 at http://env:9000 (from WAKESERVE_S3_ENDPOINT)", "check WAKESERVE_S3_ENDPOINT"]),
    (boto.ClientError({"Error": {"Code": "NoSuchBucket", "Message": "gone"}}, "PutObject"), Source.CONTEXT,
     ["S3 at http://127.0.0.1:19000 refused PutObject: NoSuchBucket gone"]),
    (connect_error("http://127.0.0.1:8080/wakeserve/status"), Source.DEFAULT,
     ["cannot reach the gateway at http://127.0.0.1:8080", "start `wakeserve up`"]),
    (connect_error("http://flag:8080/wakeserve/status"), Source.FLAG, ["the gateway at http://flag:8080 (from --url)"]),
    (status_error(401, {"error": "missing or wrong bearer token"}), Source.CONTEXT,
     ["answered 401: missing or wrong bearer token", "WAKESERVE_GATEWAY_TOKEN"]),
    (IngressRejectedError("the ingress at http://x/events answered 400: bad event"), Source.FLAG, ["answered 400: bad event"]),
    (UnauthorizedError("nope"), Source.DEFAULT, ["nope"]),
    (ContextError("unreadable context file /srv/state/context.json"), Source.DEFAULT, ["unreadable context file"]),
    (MissingLocalPartsError("not installed: run pip install 'wakeserve[local]'"), Source.DEFAULT, ["wakeserve[local]"]),
    (validation_error(), Source.DEFAULT, ["invalid setting http_port", "WAKESERVE_HTTP_PORT"]),
    (FileNotFoundError(2, "No such file or directory", "request.json"), Source.DEFAULT,
     ["No such file or directory: request.json"]),
]  # fmt: skip


@pytest.mark.parametrize(("exc", "source", "fragments"), CASES, ids=[f"{type(c[0]).__name__}-{c[1]}" for c in CASES])
def test_expected_failures_are_one_line_with_what_was_tried(exc, source, fragments):
    line = explain(exc, resolution(source))
    assert line is not None and "\n" not in line
    for fragment in fragments:
        assert fragment in line


@pytest.mark.parametrize("exc", [KeyError("bug"), ZeroDivisionError(), OSError("no file involved"), SystemExit(3)])
def test_anything_else_is_left_to_its_traceback(exc):
    assert explain(exc, resolution(Source.DEFAULT)) is None


@pytest.fixture
def closed_port() -> int:
    return free_port()


def test_the_entry_point_prints_one_line_and_exits_1(capsys, monkeypatch, tmp_path, closed_port):
    for name in [n for n in os.environ if n.startswith("WAKESERVE_")]:
        monkeypatch.delenv(name)
    code = cli.main(["status", "--state-dir", str(tmp_path), "--url", f"http://127.0.0.1:{closed_port}"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == [
        f"wakeserve status: cannot reach the gateway at http://127.0.0.1:{closed_port} (from --url): check --url"
    ]


def test_debug_shows_the_traceback(monkeypatch, tmp_path, closed_port):
    for name in [n for n in os.environ if n.startswith("WAKESERVE_")]:
        monkeypatch.delenv(name)
    with pytest.raises(httpx.ConnectError):
        cli.main(["status", "--debug", "--state-dir", str(tmp_path), "--url", f"http://127.0.0.1:{closed_port}"])
