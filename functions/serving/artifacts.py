"""Resolve a model URI (local directory or ``s3://bucket/prefix``) to a local directory.

S3 artifacts are cached on disk under a key derived from the listing (object keys, sizes and ETags), so a
restart with unchanged artifacts downloads nothing and a changed artifact lands in a fresh directory. A cache
entry becomes visible only after every object is downloaded (atomic rename), so a crash mid-download never
leaves a half-filled cache behind. The sizes in the listing are held to the size limit before anything is
downloaded.

The cache is bounded by what is in use: a version holds a lease (a shared ``flock`` on its entry's directory)
from resolution until it is released, and :meth:`ArtifactCache.evict` removes every entry nobody holds. Leases
are seen across processes, so replicas sharing one cache directory never remove each other's artifacts, and
the kernel drops the leases of a process that dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ArtifactError
from core.s3 import S3Uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)
LIMIT_SETTING = "WAKESERVE_MAX_ARTIFACT_BYTES"


def _listing(client: S3Client, uri: S3Uri) -> list[tuple[str, int, str]]:
    prefix = uri.key.rstrip("/") + "/" if uri.key else ""
    entries: list[tuple[str, int, str]] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=uri.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/"):
                continue
            entries.append((key[len(prefix) :], int(obj["Size"]), str(obj["ETag"]).strip('"')))
    return sorted(entries)


def content_key(entries: list[tuple[str, int, str]]) -> str:
    digest = hashlib.sha256()
    for name, size, etag in entries:
        digest.update(f"{name}\0{size}\0{etag}\n".encode())
    return digest.hexdigest()[:32]


def fetch_s3(uri: str, cache_dir: Path, client: S3Client, max_bytes: int | None = None) -> Path:
    """Download every object under the prefix into the content-addressed cache; reuse it when present.
    Objects adding up to more than ``max_bytes`` are refused before any is downloaded."""
    parsed = S3Uri.parse(uri)
    try:
        entries = _listing(client, parsed)
    except Exception as exc:
        raise ArtifactError(f"cannot list {uri}: {exc}") from exc
    if not entries:
        raise ArtifactError(f"no artifacts under {uri}")
    total = sum(size for _, size, _ in entries)
    if max_bytes is not None and total > max_bytes:
        raise ArtifactError(
            f"artifacts under {uri} take {total} bytes, over the limit of {max_bytes} ({LIMIT_SETTING}); "
            "nothing was downloaded"
        )
    target = cache_dir / content_key(entries)
    if target.is_dir():
        log.info("artifacts for %s found in cache %s", uri, target)
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache_dir))
    prefix = parsed.key.rstrip("/") + "/" if parsed.key else ""
    try:
        for name, _, _ in entries:
            dest = staging / name
            if not dest.resolve().is_relative_to(staging.resolve()):
                raise ArtifactError(f"refusing artifact key that escapes its directory: {name!r}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(parsed.bucket, prefix + name, str(dest))
        os.replace(staging, target)
    except ArtifactError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if target.is_dir():  # another replica finished the same download first
            return target
        raise ArtifactError(f"cannot download {uri}: {exc}") from exc
    log.info("downloaded %d artifact files from %s to %s", len(entries), uri, target)
    return target


def resolve(
    uri: str | None,
    cache_dir: Path,
    client_factory: Callable[[], S3Client] | None = None,
    max_bytes: int | None = None,
) -> Path | None:
    """None stays None (the function's packaged default); a local path must exist; s3:// is fetched."""
    if uri is None or uri == "":
        return None
    if uri.startswith("s3://"):
        if client_factory is None:
            raise ArtifactError("an s3:// model URI needs an S3 client")
        return fetch_s3(uri, cache_dir, client_factory(), max_bytes)
    path = Path(uri.removeprefix("file://")).expanduser()
    if not path.exists():
        raise ArtifactError(f"model path {path} does not exist")
    return path


class _Lease:
    """A shared lock on one cache entry's directory, held while a version may read from it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def take(cls, entry: Path) -> _Lease | None:
        """The lease, or None when the entry was evicted before the lock was taken."""
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return None
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            same = os.stat(entry).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # renamed away for eviction between the open and the lock
            os.close(fd)
            return None
        return cls(fd)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class ArtifactCache:
    """One process's view of the content-addressed cache: resolves URIs for a holder (a loaded version), keeps
    a lease on each cache entry the holder uses until :meth:`release`, and evicts entries nobody leases."""

    def __init__(
        self, directory: Path, client_factory: Callable[[], S3Client] | None, max_bytes: int | None = None
    ) -> None:
        self.directory = directory
        self.client_factory = client_factory
        self.max_bytes = max_bytes
        self._leases: dict[int, list[_Lease]] = {}  # by id() of the holder
        self._lock = threading.Lock()

    def resolve(self, uri: str | None, holder: object) -> Path | None:
        """Blocking: like :func:`resolve`, with the cache entry leased for ``holder``."""
        if uri is None or not uri.startswith("s3://"):
            return resolve(uri, self.directory, self.client_factory, self.max_bytes)
        for _ in range(3):  # an entry evicted by another replica between download and lease is fetched again
            path = resolve(uri, self.directory, self.client_factory, self.max_bytes)
            assert path is not None
            lease = _Lease.take(path)
            if lease is not None:
                with self._lock:
                    self._leases.setdefault(id(holder), []).append(lease)
                return path
        raise ArtifactError(f"artifacts of {uri} kept being evicted from {self.directory} while resolved")

    def release(self, holder: object) -> list[Path]:
        """Blocking: ``holder`` no longer needs its artifacts; evict what nobody uses. Returns what was evicted."""
        with self._lock:
            leases = self._leases.pop(id(holder), [])
        for lease in leases:
            lease.release()
        return self.evict()

    def evict(self) -> list[Path]:
        """Remove every cache entry that no version of any process holds a lease on."""
        if not self.directory.is_dir():
            return []
        evicted = []
        for entry in sorted(self.directory.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir():
                continue  # downloads in progress and entries being evicted by someone else
            if _evict(entry):
                evicted.append(entry)
        if evicted:
            log.info("evicted %d unused artifact entries from %s", len(evicted), self.directory)
        return evicted


def _evict(entry: Path) -> bool:
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # leased
        if os.stat(entry).st_ino != os.fstat(fd).st_ino:
            return False
        # Renamed away first, so no one resolves a half-removed entry; the exclusive lock is held meanwhile.
        doomed = Path(tempfile.mkdtemp(prefix=".evicting-", dir=entry.parent))
        os.replace(entry, doomed / entry.name)
        shutil.rmtree(doomed, ignore_errors=True)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)
