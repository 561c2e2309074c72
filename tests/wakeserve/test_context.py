"""The context file of ``wakeserve up`` and the precedence flag > variable > context > default."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from wakeserve import context
from wakeserve.context import Context, ContextError
from wakeserve.endpoints import Resolution, Source

CONTEXT = Context(
    pid=os.getpid(),
    gateway_url="http://127.0.0.1:18080",
    ingress_url="http://127.0.0.1:18080/events",
    kafka_bootstrap="127.0.0.1:19092",
    s3_endpoint="http://127.0.0.1:19000",
    s3_credentials={"AWS_ACCESS_KEY_ID": "wakeserve-local", "AWS_SECRET_ACCESS_KEY": "wakeserve-local"},
    gateway_token="test-token-not-a-secret",
)


@pytest.fixture(autouse=True)
def _no_wakeserve_env(monkeypatch):
    for name in [n for n in os.environ if n.startswith("WAKESERVE_")]:
        monkeypatch.delenv(name)


def a_dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_written_context_is_owner_only_and_read_back(tmp_path):
    path = context.write(tmp_path / "state", CONTEXT)
    assert path == tmp_path / "state" / "context.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert context.find(tmp_path / "state") == CONTEXT
    assert [p.name for p in path.parent.iterdir()] == ["context.json"]  # no partial file left behind


def test_no_context_and_a_stale_one_are_both_nothing(tmp_path):
    assert context.find(tmp_path) is None
    context.write(tmp_path, CONTEXT.model_copy(update={"pid": a_dead_pid()}))
    assert context.find(tmp_path) is None


def test_an_unreadable_context_is_an_error_that_names_the_file(tmp_path):
    (tmp_path / "context.json").write_text("{not json")
    with pytest.raises(ContextError, match=str(tmp_path / "context.json")):
        context.find(tmp_path)


def test_remove_leaves_another_processs_context_alone(tmp_path):
    context.write(tmp_path, CONTEXT)
    context.remove(tmp_path, pid=os.getpid() + 1)
    assert (tmp_path / "context.json").exists()
    context.remove(tmp_path, pid=os.getpid())
    assert not (tmp_path / "context.json").exists()
    context.remove(tmp_path, pid=os.getpid())  # already gone: nothing to do


@pytest.mark.parametrize(
    ("flag", "env", "found", "expected", "source"),
    [
        (None, None, None, "127.0.0.1:9092", Source.DEFAULT),
        (None, None, CONTEXT, "127.0.0.1:19092", Source.CONTEXT),
        (None, "env:9092", CONTEXT, "env:9092", Source.ENV),
        ("flag:9092", "env:9092", CONTEXT, "flag:9092", Source.FLAG),
        ("flag:9092", None, None, "flag:9092", Source.FLAG),
    ],
    ids=["default", "context", "env-over-context", "flag-over-all", "flag"],
)
def test_kafka_bootstrap_precedence(monkeypatch, tmp_path, flag, env, found, expected, source):
    if env:
        monkeypatch.setenv("WAKESERVE_KAFKA_BOOTSTRAP", env)
    resolution = Resolution(tmp_path, found)
    settings = resolution.events({"kafka_bootstrap": flag, "s3_endpoint": None})
    assert settings.kafka_bootstrap == expected
    assert resolution.endpoints["kafka_bootstrap"].source is source


@pytest.mark.parametrize(
    ("flag", "env", "found", "expected_endpoint", "expected_credentials"),
    [
        (None, None, None, None, {}),
        (None, None, CONTEXT, "http://127.0.0.1:19000", CONTEXT.s3_credentials),
        (None, "http://env:9000", CONTEXT, "http://env:9000", {}),
        ("http://flag:9000", None, CONTEXT, "http://flag:9000", {}),
    ],
    ids=["aws", "context-with-its-placeholders", "env-without-them", "flag-without-them"],
)
def test_s3_endpoint_precedence_and_placeholder_credentials(
    monkeypatch, tmp_path, flag, env, found, expected_endpoint, expected_credentials
):
    if env:
        monkeypatch.setenv("WAKESERVE_S3_ENDPOINT", env)
    resolution = Resolution(tmp_path, found)
    assert resolution.events({"s3_endpoint": flag}).s3_endpoint == expected_endpoint
    assert resolution.local_s3_credentials() == expected_credentials


@pytest.mark.parametrize(
    ("flag", "port", "found", "expected", "token"),
    [
        (None, None, None, "http://127.0.0.1:8080", None),
        (None, None, CONTEXT, "http://127.0.0.1:18080", "test-token-not-a-secret"),
        (None, "9999", CONTEXT, "http://127.0.0.1:9999", None),
        ("http://elsewhere:1/", None, CONTEXT, "http://elsewhere:1", None),
    ],
    ids=["default", "context-and-its-token", "port-variable", "flag-gets-no-context-token"],
)
def test_gateway_precedence_and_the_token_stays_with_its_gateway(
    monkeypatch, tmp_path, flag, port, found, expected, token
):
    if port:
        monkeypatch.setenv("WAKESERVE_HTTP_PORT", port)
    resolution = Resolution(tmp_path, found)
    gateway = resolution.gateway(flag)
    assert gateway.value == expected
    assert resolution.token_for(expected) == token


@pytest.mark.parametrize(
    ("url", "gets_token"),
    [
        ("http://127.0.0.1:18080", True),
        ("http://127.0.0.1:18080/wakeserve/status", True),
        ("http://127.0.0.1:18080@elsewhere.example/", False),
        ("http://127.0.0.1:180801", False),
        ("http://127.0.0.1:1808", False),
        ("https://127.0.0.1:18080", False),
        ("http://user@127.0.0.1:18080", False),
    ],
    ids=["same", "same-with-path", "userinfo-trick", "longer-port", "shorter-port", "other-scheme", "userinfo"],
)
def test_the_context_token_goes_only_to_the_same_origin(tmp_path, url, gets_token):
    token = Resolution(tmp_path, CONTEXT).token_for(url)
    assert (token == "test-token-not-a-secret") is gets_token


def test_the_token_variable_wins_over_the_context(monkeypatch, tmp_path):
    monkeypatch.setenv("WAKESERVE_GATEWAY_TOKEN", "from-env-not-a-secret")
    assert Resolution(tmp_path, CONTEXT).token_for(CONTEXT.gateway_url) == "from-env-not-a-secret"
