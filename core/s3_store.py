"""moto's S3 server with its buckets and objects kept in a directory, so a restart loses nothing it acknowledged.

moto holds everything in memory. This server wraps moto's WSGI application: after every successful write
(PUT, POST, DELETE) it mirrors the bucket or object the request touched from moto's state to disk, before the
answer leaves, and at start it loads the directory back into moto. An object is two files named by the hash of
its key: ``<hash>.data`` (the bytes) and ``<hash>.json`` (key, content type, user metadata), the latter written
last, so a write cut short leaves the previous version. Run it with
``python -m core.s3_store --data-dir DIR -H HOST -p PORT``. Listings are answered by :mod:`core.s3_listing`.

Scope, kept narrow on purpose: path-style requests (what clients do for a loopback endpoint), no object
versions, no bucket configuration beyond the bucket itself. Durable across a crash of this process, not of the
machine (no fsync).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from core import s3_listing

WRITES = frozenset({"PUT", "POST", "DELETE"})
BUCKET_FILE = ".bucket.json"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def split_path(path: str) -> tuple[str, str] | None:
    """``/bucket/key`` -> (bucket, key); ``/bucket`` -> (bucket, ""); None for moto's own API and the root."""
    parts = path.lstrip("/").split("/", 1)
    if not parts[0] or parts[0].startswith("moto-api"):
        return None
    return parts[0], unquote(parts[1]) if len(parts) > 1 else ""


def key_file(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class DiskMirror:
    """The directory side: what moto holds for one bucket or key, written to or removed from disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        # One lock for every mirror step: each step reads moto's current state under it, so the last step for
        # a key always writes that key's latest state, whatever order concurrent writes finished in.
        self.lock = threading.Lock()

    def sync(self, bucket: str, key: str) -> None:
        from moto.s3.exceptions import MissingBucket
        from moto.s3.models import s3_backends

        with self.lock:
            located = s3_backends.bucket_accounts.get(bucket)
            folder = self.root / bucket
            if located is None:
                self._drop_bucket(folder)
                return
            partition, account = located
            backend = s3_backends[account][partition]
            try:
                fake_bucket = backend.get_bucket(bucket)
            except MissingBucket:
                self._drop_bucket(folder)
                return
            folder.mkdir(exist_ok=True)
            meta = {"account": account, "partition": partition, "region": fake_bucket.region_name}
            _write_atomic(folder / BUCKET_FILE, json.dumps(meta).encode())
            keys = [key] if key else self._stored_keys(folder)  # bucket-level writes: multi-delete
            for name in keys:
                self._sync_key(backend, bucket, folder, name)

    def _sync_key(self, backend: Any, bucket: str, folder: Path, key: str) -> None:
        stem = folder / key_file(key)
        fake_key = None
        with contextlib.suppress(Exception):
            fake_key = backend.get_object(bucket, key)
        if fake_key is None:
            stem.with_suffix(".json").unlink(missing_ok=True)
            stem.with_suffix(".data").unlink(missing_ok=True)
            return
        _write_atomic(stem.with_suffix(".data"), bytes(fake_key.value))
        meta = {"key": key, "metadata": dict(fake_key.metadata)}
        _write_atomic(stem.with_suffix(".json"), json.dumps(meta).encode())

    @staticmethod
    def _stored_keys(folder: Path) -> list[str]:
        return [json.loads(p.read_text())["key"] for p in folder.glob("*.json") if p.name != BUCKET_FILE]

    @staticmethod
    def _drop_bucket(folder: Path) -> None:
        if folder.is_dir():
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()

    def load(self) -> int:
        """Put every stored bucket and object back into moto; returns the number of objects."""
        from moto.s3.models import s3_backends

        count = 0
        for folder in sorted(p for p in self.root.iterdir() if (p / BUCKET_FILE).is_file()):
            meta = json.loads((folder / BUCKET_FILE).read_text())
            backend = s3_backends[meta["account"]][meta["partition"]]
            backend.create_bucket(folder.name, meta["region"])
            for path in folder.glob("*.json"):
                data = path.with_suffix(".data")
                if path.name == BUCKET_FILE or not data.is_file():
                    continue
                stored = json.loads(path.read_text())
                fake_key = backend.put_object(folder.name, stored["key"], data.read_bytes())
                fake_key.set_metadata(stored["metadata"], replace=True)
                count += 1
        return count


class Persisting:
    """WSGI middleware: a successful write is mirrored to disk before its answer is sent."""

    def __init__(self, app: WsgiApp, mirror: DiskMirror) -> None:
        self.app = app
        self.mirror = mirror

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        target = split_path(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD")
        if method == "GET" and target is not None and not target[1]:
            listing = self._list(target[0], environ.get("QUERY_STRING", ""))
            if listing is not None:
                start_response("200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(listing)))])
                return [listing]
        if method not in WRITES or target is None:
            return self.app(environ, start_response)
        statuses: list[str] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            statuses.append(status)
            return start_response(status, headers, exc_info)

        # Headers go out with the first body chunk, so buffering the body holds the answer until the mirror ran.
        body = list(self.app(environ, capture))
        if statuses and statuses[-1][:1] == "2":
            self.mirror.sync(*target)
        return body

    @staticmethod
    def _list(bucket: str, query_string: str) -> bytes | None:
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        return s3_listing.list_v2(bucket, query) if s3_listing.handles(query) else None


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=9000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    mirror = DiskMirror(args.data_dir)
    loaded = mirror.load()
    print(f"loaded {loaded} objects from {args.data_dir}", flush=True)
    app = Persisting(DomainDispatcherApplication(create_backend_app), mirror)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
