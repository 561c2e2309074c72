"""End offsets and committed offsets of one topic for one consumer group, read from the broker.

The end offset of a partition is its high watermark. ListOffsets(latest) returns it on Apache Kafka, but tansu
answers with the base offset of the last record batch plus one, which under-reports whenever a producer
batches. A Fetch response carries the high watermark on both brokers, so each end offset is
``max(ListOffsets, Fetch high watermark)``, the fetch starting at the ListOffsets answer minus one: that record
exists, so the broker answers at once, with about one batch. A partition is fetched again only when its
ListOffsets answer moved (every append moves it on both brokers), so an idle topic costs no fetches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError
from kafka.net.compat import KafkaNetClient

from core.errors import TransientError
from scalers.keda import PartitionOffsets

UNKNOWN_TOPIC_OR_PARTITION = 3
_Client = TypeVar("_Client")


class OffsetsUnavailableError(TransientError):
    """The broker did not answer (down, restarting, or a partition without a leader); retry later."""


class OffsetReader:
    """Reads ``PartitionOffsets`` for (topic, group) pairs over long-lived admin and consumer connections.

    Blocking and serialised by a lock: call :meth:`read` from a worker thread. The consumer has no group
    (it never commits and never joins); its partitions stay paused between reads so nothing is fetched in
    the background. A topic not read for ``forget_after_s`` is dropped from its assignment.
    """

    def __init__(
        self,
        kafka_config: Mapping[str, Any],
        *,
        timeout_s: float = 5.0,
        max_partition_fetch_bytes: int = 64 * 1024,
        forget_after_s: float = 600.0,
    ) -> None:
        self._config = dict(kafka_config)
        self._timeout_s = timeout_s
        self._max_partition_fetch_bytes = max_partition_fetch_bytes
        self._forget_after_s = forget_after_s
        self._lock = threading.Lock()
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None
        self._partitions: dict[str, frozenset[TopicPartition]] = {}
        self._topic_ids: dict[str, object] = {}
        self._last_read: dict[str, float] = {}
        self._ends: dict[TopicPartition, tuple[int, int]] = {}  # ListOffsets answer -> measured end

    def read(self, topic: str, group: str) -> list[PartitionOffsets]:
        """Offsets of every partition of ``topic``, by partition; ``[]`` when the topic does not exist.

        Raises :class:`OffsetsUnavailableError` when the broker cannot be reached or does not answer in time.
        """
        with self._lock:
            try:
                return self._read(topic, group)
            except KafkaError as exc:
                raise OffsetsUnavailableError(f"cannot read offsets of {topic!r} for group {group!r}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
            if self._admin is not None:
                self._admin.close()
                self._admin = None
            self._partitions.clear()
            self._ends.clear()

    def _connect(self) -> tuple[KafkaAdminClient, KafkaConsumer]:
        timeout_ms = int(self._timeout_s * 1000)
        common = {
            **self._config,
            "request_timeout_ms": timeout_ms,
            "bootstrap_timeout_ms": timeout_ms,
            "reconnect_backoff_max_ms": 1_000,
        }
        if self._admin is None:
            self._admin = _built(KafkaAdminClient, common)
        if self._consumer is None:
            self._consumer = _built(
                KafkaConsumer,
                common,
                group_id=None,
                enable_auto_commit=False,
                allow_auto_create_topics=False,
                auto_offset_reset="latest",
                fetch_max_wait_ms=10,  # a fetch still in flight delays the next read this long
                max_partition_fetch_bytes=self._max_partition_fetch_bytes,
                fetch_max_bytes=max(self._max_partition_fetch_bytes, 1024 * 1024),
                metadata_max_age_ms=30_000,
            )
        return self._admin, self._consumer

    def _read(self, topic: str, group: str) -> list[PartitionOffsets]:
        admin, consumer = self._connect()
        described = admin.describe_topics([topic])[0]
        if described["error_code"] == UNKNOWN_TOPIC_OR_PARTITION:
            self._drop(consumer, topic)
            return []
        if described["error_code"] != 0:
            raise OffsetsUnavailableError(f"metadata of {topic!r} has error code {described['error_code']}")
        tps = frozenset(TopicPartition(topic, p["partition_index"]) for p in described["partitions"])
        if described.get("topic_id") != self._topic_ids.get(topic):
            self._drop(consumer, topic)  # recreated: cached ends and fetch state belong to the old log
            self._topic_ids[topic] = described.get("topic_id")
        self._assign(consumer, topic, tps)

        # Committed offsets first: ends read afterwards are never below them, so no lag comes out negative.
        committed = admin.list_group_offsets({group: sorted(tps)}).get(group, {})
        hints = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
        ends = self._ends_of(consumer, {tp: hints[tp].offset for tp in tps})
        result = []
        for tp in sorted(tps, key=lambda t: t.partition):
            offset = committed.get(tp)
            result.append(
                PartitionOffsets(
                    partition=tp.partition,
                    latest=ends[tp],
                    committed=offset.offset if offset is not None and offset.offset >= 0 else None,
                )
            )
        return result

    def _ends_of(self, consumer: KafkaConsumer, hints: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        ends: dict[TopicPartition, int] = {}
        stale: dict[TopicPartition, int] = {}
        for tp, hint in hints.items():
            cached = self._ends.get(tp)
            if hint <= 0:
                ends[tp] = 0
            elif cached is not None and cached[0] == hint:
                ends[tp] = cached[1]
            else:
                stale[tp] = hint
        if stale:
            ends.update(self._fetch_highwater(consumer, stale))
        for tp, hint in hints.items():
            self._ends[tp] = (hint, ends[tp])
        return ends

    def _fetch_highwater(self, consumer: KafkaConsumer, hints: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        for tp, hint in hints.items():
            consumer.seek(tp, hint - 1)
        consumer.resume(*hints)
        deadline = time.monotonic() + self._timeout_s
        try:
            # The position passes hint-1 once a fetch answer for the partition was processed (a transaction
            # marker there advances it too), and that answer set the high watermark.
            pending = set(hints)
            while pending:
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                if remaining_ms <= 0:
                    names = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(pending))
                    raise OffsetsUnavailableError(f"no fetch answer within {self._timeout_s:g}s for {names}")
                consumer.poll(timeout_ms=min(remaining_ms, 50))
                pending = {tp for tp in pending if _position(consumer, tp) < hints[tp]}
        finally:
            consumer.pause(*hints)
        return {tp: max(hint, consumer.highwater(tp) or 0, _position(consumer, tp)) for tp, hint in hints.items()}

    def _assign(self, consumer: KafkaConsumer, topic: str, tps: frozenset[TopicPartition]) -> None:
        now = time.monotonic()
        self._last_read[topic] = now
        for old in [t for t, at in self._last_read.items() if now - at > self._forget_after_s]:
            self._drop(consumer, old)
        if self._partitions.get(topic) == tps:
            return
        self._partitions[topic] = tps
        self._reassign(consumer)

    def _drop(self, consumer: KafkaConsumer, topic: str) -> None:
        self._last_read.pop(topic, None)
        self._topic_ids.pop(topic, None)
        for tp in [tp for tp in self._ends if tp.topic == topic]:
            del self._ends[tp]
        if self._partitions.pop(topic, None) is not None:
            self._reassign(consumer)

    def _reassign(self, consumer: KafkaConsumer) -> None:
        assignment = [tp for tps in self._partitions.values() for tp in tps]
        consumer.assign(assignment)
        consumer.pause(*assignment)


def _position(consumer: KafkaConsumer, tp: TopicPartition) -> int:
    position = consumer.position(tp, timeout_ms=0)  # no waiting: -1 while a reset is still in flight
    return -1 if position is None else int(position)


def _built(client_class: Callable[..., _Client], config: Mapping[str, Any], **extra: Any) -> _Client:
    """``client_class(**config, **extra)``, working around two kafka-python 3.0 client defects.

    It starts a client's IO thread before it bootstraps and leaves it running when the bootstrap fails,
    which would leak a thread per attempt while the broker is down; and its connection manager builds the
    cluster metadata without ``allow_auto_create_topics``, so a consumer asked not to create topics still
    sends metadata requests that create them (a topic deleted under a reader would come back).
    """
    started: list[KafkaNetClient] = []

    def kafka_client(**configs: Any) -> KafkaNetClient:
        client = KafkaNetClient(**configs)
        started.append(client)
        if "allow_auto_create_topics" in configs:
            client.cluster.config["allow_auto_create_topics"] = configs["allow_auto_create_topics"]
        return client

    try:
        return client_class(**config, **extra, kafka_client=kafka_client)
    except BaseException:
        for client in started:
            client.close()
            client._net.stop()
        raise
