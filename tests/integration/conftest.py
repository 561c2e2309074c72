from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from events.kafka import ensure_topics, make_producer
from events.settings import EventSettings
from functions.classifier.head import packaged_artifact
from tests.support.replicas import Replica, start_replica

pytestmark = pytest.mark.integration
FUNCTIONS = ("embedder", "classifier", "echo")


@dataclass
class EventStack:
    """The real broker and S3 server, with this session's buckets and topics, and the env replicas read."""

    settings: EventSettings
    env: dict[str, str]
    s3: object
    s3_endpoint: str

    def client(self):  # type: ignore[no-untyped-def]
        return self.s3.client()  # type: ignore[attr-defined]


def stack_env(bootstrap: str, s3_endpoint: str, payloads: str, results: str) -> dict[str, str]:
    return {
        "WAKESERVE_KAFKA_BOOTSTRAP": bootstrap,
        "WAKESERVE_S3_ENDPOINT": s3_endpoint,
        "WAKESERVE_PAYLOAD_BUCKETS": payloads,
        "WAKESERVE_RESULTS_BUCKET": results,
        "WAKESERVE_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "WAKESERVE_RETRY_BASE_MS": "20",
        "WAKESERVE_RETRY_MAX_MS": "200",
    }


@pytest.fixture(scope="session")
def event_stack(kafka_server, s3_server) -> EventStack:
    suffix = uuid.uuid4().hex[:8]
    payloads, results = f"payloads-{suffix}", f"results-{suffix}"
    client = s3_server.client()
    for bucket in (payloads, results, f"forbidden-{suffix}"):
        client.create_bucket(Bucket=bucket)
    env = stack_env(kafka_server.bootstrap, s3_server.endpoint, payloads, results)
    settings = EventSettings(**{k.removeprefix("WAKESERVE_").lower(): v for k, v in env.items()})
    topics = settings.topics
    ensure_topics(settings, [topics.requests(f) for f in FUNCTIONS] + [topics.results, topics.deadletter])
    return EventStack(settings, env, s3_server, s3_server.endpoint)


@pytest.fixture(scope="module")
def producer(event_stack: EventStack):  # type: ignore[no-untyped-def]
    # Per module: a kafka-python 3 producer whose network thread has once spun on a socket send keeps a core
    # busy until it is closed, and the generation tests that run later need both cores.
    p = make_producer(event_stack.settings)
    yield p
    p.close(timeout=10)


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory, event_stack: EventStack) -> Iterator[Replica]:
    replica = start_replica("embedder", tmp_path_factory.mktemp("embedder"), "--consume", env=event_stack.env)
    yield replica
    replica.process.stop()


@pytest.fixture(scope="session")
def classifier_uri(s3_server) -> str:
    """The packaged classifier head uploaded to moto's S3 server, as `wakeserve up` will do."""
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    for path in Path(packaged_artifact()).iterdir():
        client.upload_file(str(path), bucket, f"classifier/{path.name}")
    return f"s3://{bucket}/classifier"


@pytest.fixture(scope="session")
def classifier(
    tmp_path_factory: pytest.TempPathFactory, event_stack: EventStack, classifier_uri: str
) -> Iterator[Replica]:
    tmp = tmp_path_factory.mktemp("classifier")
    replica = start_replica(
        "classifier",
        tmp,
        "--model-uri",
        classifier_uri,
        "--consume",
        env={**event_stack.env, "WAKESERVE_MODEL_CACHE_DIR": str(tmp / "cache")},
    )
    yield replica
    replica.process.stop()


@pytest.fixture(scope="session")
def echo_tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    """An echo replica with batching off and room for a single waiting request."""
    replica = start_replica("echo", tmp_path_factory.mktemp("echo"), "--max-queue", "1", "--max-batch-size", "1")
    yield replica
    replica.process.stop()
