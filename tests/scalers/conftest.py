from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata


class Broker:
    """Operations on one broker: topics with unique names, batched produces, group commits."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    def topic(self, partitions: int = 3, name: str | None = None) -> str:
        name = name or f"scaler-{uuid.uuid4().hex[:10]}"
        self.admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        return name

    def producer(self, linger_ms: int = 0) -> KafkaProducer:
        return KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=linger_ms, acks="all")

    def produce(self, topic: str, counts: Mapping[int, int], linger_ms: int = 50) -> None:
        """``counts[p]`` records to partition ``p``, sent together so the producer batches them (linger)."""
        producer = self.producer(linger_ms)
        try:
            for partition, count in counts.items():
                for i in range(count):
                    producer.send(topic, value=b"record-%d" % i, partition=partition)
            producer.flush(timeout=30)
        finally:
            producer.close(timeout=10)

    def commit(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False)
        try:
            tps = [TopicPartition(topic, p) for p in offsets]
            consumer.assign(tps)
            consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
        finally:
            consumer.close()

    def close(self) -> None:
        self.admin.close()


@pytest.fixture(scope="module")
def broker(kafka_server) -> Iterator[Broker]:
    b = Broker(kafka_server.bootstrap)
    yield b
    b.close()


def unique_group() -> str:
    return f"group-{uuid.uuid4().hex[:10]}"
