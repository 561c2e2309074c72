from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.classifier.head import packaged_artifact
from tests.support.replicas import Replica, start_replica

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    replica = start_replica("embedder", tmp_path_factory.mktemp("embedder"))
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
def classifier(tmp_path_factory: pytest.TempPathFactory, s3_server, classifier_uri: str) -> Iterator[Replica]:
    tmp = tmp_path_factory.mktemp("classifier")
    replica = start_replica(
        "classifier",
        tmp,
        "--model-uri",
        classifier_uri,
        env={"WAKESERVE_S3_ENDPOINT": s3_server.endpoint, "WAKESERVE_MODEL_CACHE_DIR": str(tmp / "cache")},
    )
    yield replica
    replica.process.stop()


@pytest.fixture(scope="session")
def echo_tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    """An echo replica with batching off and room for a single waiting request."""
    replica = start_replica("echo", tmp_path_factory.mktemp("echo"), "--max-queue", "1", "--max-batch-size", "1")
    yield replica
    replica.process.stop()
