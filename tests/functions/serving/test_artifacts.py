from __future__ import annotations

import uuid

import pytest

from core.errors import ArtifactError
from functions.serving import artifacts


@pytest.fixture
def bucket(s3_server):
    name = f"art-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


def upload(s3_server, bucket, files: dict[str, bytes], prefix="model"):
    client = s3_server.client()
    for name, body in files.items():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=body)


def test_s3_artifacts_download_once_and_are_reused_from_cache(s3_server, bucket, tmp_path):
    upload(s3_server, bucket, {"weights.bin": b"w" * 1000, "sub/config.json": b"{}"})
    client = s3_server.client()
    first = artifacts.resolve(f"s3://{bucket}/model", tmp_path, lambda: client)
    assert first is not None
    assert (first / "weights.bin").read_bytes() == b"w" * 1000
    assert (first / "sub" / "config.json").read_bytes() == b"{}"
    stamp = (first / "weights.bin").stat().st_mtime_ns

    second = artifacts.resolve(f"s3://{bucket}/model/", tmp_path, lambda: client)
    assert second == first
    assert (second / "weights.bin").stat().st_mtime_ns == stamp  # not downloaded again
    assert not list(tmp_path.glob(".partial-*"))


def test_changed_artifacts_land_in_a_new_cache_entry(s3_server, bucket, tmp_path):
    upload(s3_server, bucket, {"weights.bin": b"v1"})
    client = s3_server.client()
    first = artifacts.resolve(f"s3://{bucket}/model", tmp_path, lambda: client)
    upload(s3_server, bucket, {"weights.bin": b"v2-longer"})
    second = artifacts.resolve(f"s3://{bucket}/model", tmp_path, lambda: client)
    assert first != second
    assert (first / "weights.bin").read_bytes() == b"v1"
    assert (second / "weights.bin").read_bytes() == b"v2-longer"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://{bucket}/missing", "no artifacts under"),
        ("s3://no-such-bucket-wakeserve/x", "cannot list"),
    ],
)
def test_missing_s3_artifacts_are_an_artifact_error(s3_server, bucket, tmp_path, uri, message):
    client = s3_server.client()
    with pytest.raises(ArtifactError, match=message):
        artifacts.resolve(uri.format(bucket=bucket), tmp_path, lambda: client)


@pytest.mark.parametrize(
    ("uri", "exists", "expected"),
    [
        (None, False, None),
        ("", False, None),
        ("{tmp}/model", True, "{tmp}/model"),
        ("file://{tmp}/model", True, "{tmp}/model"),
    ],
)
def test_local_uris(tmp_path, uri, exists, expected):
    if exists:
        (tmp_path / "model").mkdir()
    resolved = artifacts.resolve(uri.format(tmp=tmp_path) if uri else uri, tmp_path / "cache")
    assert (str(resolved) if resolved else None) == (expected.format(tmp=tmp_path) if expected else None)


def test_missing_local_path_is_an_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        artifacts.resolve(str(tmp_path / "nope"), tmp_path)
