"""Resolve a model URI (local directory or ``s3://bucket/prefix``) to a local directory.

S3 artifacts are cached on disk under a key derived from the listing (object keys, sizes and ETags), so a
restart with unchanged artifacts downloads nothing and a changed artifact lands in a fresh directory. A cache
entry becomes visible only after every object is downloaded (atomic rename), so a crash mid-download never
leaves a half-filled cache behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ArtifactError
from core.s3 import S3Uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


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


def fetch_s3(uri: str, cache_dir: Path, client: S3Client) -> Path:
    """Download every object under the prefix into the content-addressed cache; reuse it when present."""
    parsed = S3Uri.parse(uri)
    try:
        entries = _listing(client, parsed)
    except Exception as exc:
        raise ArtifactError(f"cannot list {uri}: {exc}") from exc
    if not entries:
        raise ArtifactError(f"no artifacts under {uri}")
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


def resolve(uri: str | None, cache_dir: Path, client_factory: Callable[[], S3Client] | None = None) -> Path | None:
    """None stays None (the function's packaged default); a local path must exist; s3:// is fetched."""
    if uri is None or uri == "":
        return None
    if uri.startswith("s3://"):
        if client_factory is None:
            raise ArtifactError("an s3:// model URI needs an S3 client")
        return fetch_s3(uri, cache_dir, client_factory())
    path = Path(uri.removeprefix("file://")).expanduser()
    if not path.exists():
        raise ArtifactError(f"model path {path} does not exist")
    return path
