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


class CountingClient:
    """The real S3 client, counting the objects it downloads."""

    def __init__(self, client) -> None:  # type: ignore[no-untyped-def]
        self.client = client
        self.downloads: list[str] = []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.client, name)

    def download_file(self, bucket: str, key: str, dest: str) -> None:
        self.downloads.append(key)
        self.client.download_file(bucket, key, dest)


@pytest.mark.parametrize(
    ("limit", "refused"),
    [(3000, False), (2500, False), (2499, True), (1, True)],
    ids=["below", "exactly", "one-over", "far-over"],
)
def test_the_size_limit_is_checked_on_the_listing_before_any_download(s3_server, bucket, tmp_path, limit, refused):
    upload(s3_server, bucket, {"a.bin": b"a" * 2000, "b.bin": b"b" * 500})
    client = CountingClient(s3_server.client())
    uri = f"s3://{bucket}/model"
    if not refused:
        path = artifacts.resolve(uri, tmp_path, lambda: client, max_bytes=limit)
        assert path is not None and (path / "b.bin").read_bytes() == b"b" * 500
        assert sorted(client.downloads) == ["model/a.bin", "model/b.bin"]
        return
    with pytest.raises(ArtifactError, match=f"take 2500 bytes, over the limit of {limit}.*nothing was downloaded"):
        artifacts.resolve(uri, tmp_path, lambda: client, max_bytes=limit)
    assert client.downloads == [] and list(tmp_path.iterdir()) == []


def entries(cache_dir) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(p.name for p in cache_dir.iterdir())


def test_entries_no_version_uses_are_evicted_and_leased_ones_kept(s3_server, bucket, tmp_path):
    upload(s3_server, bucket, {"w.bin": b"one"}, prefix="v1")
    upload(s3_server, bucket, {"w.bin": b"two"}, prefix="v2")
    upload(s3_server, bucket, {"w.bin": b"enc"}, prefix="encoder")
    client = s3_server.client()
    cache = artifacts.ArtifactCache(tmp_path, lambda: client)
    active, candidate = object(), object()
    v1 = cache.resolve(f"s3://{bucket}/v1", active)
    encoder = cache.resolve(f"s3://{bucket}/encoder", active)
    assert cache.evict() == []  # everything is in use
    v2 = cache.resolve(f"s3://{bucket}/v2", candidate)
    also_encoder = cache.resolve(f"s3://{bucket}/encoder", candidate)
    assert also_encoder == encoder and len(entries(tmp_path)) == 3

    # Promotion retires the active version: its own entry goes, the one the new version shares stays.
    assert cache.release(active) == [v1]
    assert entries(tmp_path) == sorted([v2.name, encoder.name])  # type: ignore[union-attr]
    assert (v2 / "w.bin").read_bytes() == b"two" and (encoder / "w.bin").read_bytes() == b"enc"  # type: ignore[operator]

    # A later version back on v1's files downloads them again, into the same content-addressed entry.
    rollback = object()
    again = cache.resolve(f"s3://{bucket}/v1", rollback)
    assert again == v1 and (again / "w.bin").read_bytes() == b"one"  # type: ignore[operator]
    assert sorted(cache.release(candidate)) == sorted([v2, encoder])
    assert entries(tmp_path) == [v1.name]  # type: ignore[union-attr]
    assert cache.release(rollback) == [v1] and entries(tmp_path) == []


def test_an_entry_another_process_leases_is_never_evicted(s3_server, bucket, tmp_path):
    import subprocess
    import sys

    upload(s3_server, bucket, {"w.bin": b"shared"})
    client = s3_server.client()
    path = artifacts.resolve(f"s3://{bucket}/model", tmp_path, lambda: client)
    # Another replica sharing the cache directory holds a lease (a shared flock) on the entry.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
         "fcntl.flock(fd, fcntl.LOCK_SH); print('held', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        cache = artifacts.ArtifactCache(tmp_path, lambda: client)
        assert cache.evict() == [] and path is not None and path.is_dir()
    finally:
        holder.communicate("", timeout=10)  # closing its stdin ends it, and with it the lease
    assert cache.evict() == [path] and entries(tmp_path) == []


def test_the_leases_of_the_same_entry_are_counted_per_version(s3_server, bucket, tmp_path):
    upload(s3_server, bucket, {"w.bin": b"same"})
    client = s3_server.client()
    cache = artifacts.ArtifactCache(tmp_path, lambda: client)
    old, new = object(), object()
    path = cache.resolve(f"s3://{bucket}/model", old)
    assert cache.resolve(f"s3://{bucket}/model", new) == path  # a new label on the same artifacts
    assert cache.release(old) == [] and path is not None and path.is_dir()
    assert cache.release(new) == [path]
