"""OffsetReader against the real broker (tansu): exact end offsets under batching, committed offsets, failures."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from kafka import TopicPartition
from kafka.admin import NewTopic, OffsetSpec

from core.processes import free_port, start_kafka
from scalers.keda import KafkaLag, KafkaTrigger
from scalers.offsets import OffsetReader, OffsetsUnavailableError
from tests.scalers.conftest import Broker, unique_group

pytestmark = pytest.mark.integration


@pytest.fixture
def reader(broker: Broker):
    r = OffsetReader({"bootstrap_servers": [broker.bootstrap]})
    yield r
    r.close()


def as_table(offsets):
    return {o.partition: (o.latest, o.committed) for o in offsets}


def test_list_offsets_under_reports_a_batching_producer_on_tansu(broker: Broker):
    """The premise of the reader: ListOffsets(latest) is the last batch's base offset + 1 on tansu."""
    topic = broker.topic(partitions=1)
    broker.produce(topic, {0: 100}, linger_ms=50)
    tp = TopicPartition(topic, 0)
    listed = broker.admin.list_partition_offsets({tp: OffsetSpec.LATEST})[tp].offset
    assert listed < 100


def test_end_offsets_are_exact_counts_under_batching(broker: Broker, reader: OffsetReader):
    topic = broker.topic(partitions=3)
    group = unique_group()
    broker.produce(topic, {0: 34, 1: 33, 2: 33}, linger_ms=50)
    broker.commit(group, topic, {0: 10, 1: 33})

    offsets = reader.read(topic, group)

    assert as_table(offsets) == {0: (34, 10), 1: (33, 33), 2: (33, None)}


def test_lag_is_keda_lag_of_the_exact_offsets(broker: Broker, reader: OffsetReader):
    topic = broker.topic(partitions=3)
    group = unique_group()
    broker.produce(topic, {0: 34, 1: 33, 2: 33}, linger_ms=50)
    broker.commit(group, topic, {0: 10, 1: 33})
    offsets = reader.read(topic, group)

    # latest policy: a partition without a committed offset counts 1 (the consumer would start at the end).
    latest = KafkaLag(KafkaTrigger(topic, group)).measure(offsets)
    assert dict(latest.partition_lags) == {0: 24, 1: 0, 2: 1}
    assert (latest.total_lag, latest.active) == (25, True)

    # earliest policy: it counts the whole partition; the metric is capped at partitions * lagThreshold.
    earliest = KafkaLag(KafkaTrigger(topic, group, offset_reset_policy="earliest")).measure(offsets)
    assert dict(earliest.partition_lags) == {0: 24, 1: 0, 2: 33}
    assert (earliest.total_lag_with_persistent, earliest.total_lag) == (57, 3 * 10)


def test_no_committed_offset_is_none(broker: Broker, reader: OffsetReader):
    topic = broker.topic(partitions=2)
    broker.produce(topic, {0: 5})

    assert as_table(reader.read(topic, unique_group())) == {0: (5, None), 1: (0, None)}


def test_new_batches_and_commits_are_seen_on_the_next_read(broker: Broker, reader: OffsetReader):
    topic = broker.topic(partitions=2)
    group = unique_group()
    broker.produce(topic, {0: 20, 1: 7})
    assert as_table(reader.read(topic, group)) == {0: (20, None), 1: (7, None)}
    assert as_table(reader.read(topic, group)) == {0: (20, None), 1: (7, None)}

    broker.produce(topic, {0: 15})
    broker.commit(group, topic, {0: 20, 1: 7})
    assert as_table(reader.read(topic, group)) == {0: (35, 20), 1: (7, 7)}


def test_a_topic_created_after_the_first_read_is_picked_up(broker: Broker, reader: OffsetReader):
    # tansu has no CreatePartitions; a topic appearing is the partitions-appearing case we can exercise.
    topic, group = f"later-{unique_group()}", unique_group()
    assert reader.read(topic, group) == []
    broker.admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    broker.produce(topic, {1: 4})
    assert as_table(reader.read(topic, group)) == {0: (0, None), 1: (4, None)}


def test_several_topics_through_one_reader(broker: Broker, reader: OffsetReader):
    first, second = broker.topic(partitions=1), broker.topic(partitions=2)
    broker.produce(first, {0: 12})
    broker.produce(second, {0: 3, 1: 9})
    group = unique_group()
    for _ in range(2):
        assert as_table(reader.read(first, group)) == {0: (12, None)}
        assert as_table(reader.read(second, group)) == {0: (3, None), 1: (9, None)}


def test_a_topic_that_does_not_exist_has_no_partitions(broker: Broker, reader: OffsetReader):
    missing = f"missing-{unique_group()}"
    assert reader.read(missing, unique_group()) == []
    assert missing not in broker.admin.list_topics()  # reading does not create it


def test_broker_down_raises_unavailable_and_the_reader_recovers(tmp_path):
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    broker = start_kafka(port, log_path=tmp_path / "tansu.log")
    topics = Broker(bootstrap)
    reader = OffsetReader({"bootstrap_servers": [bootstrap]}, timeout_s=2.0)
    try:
        topic = topics.topic(partitions=1)
        topics.produce(topic, {0: 3})
        assert as_table(reader.read(topic, "g")) == {0: (3, None)}

        broker.signal(signal.SIGKILL)  # a crash; SIGTERM makes tansu wait for its clients to leave
        broker.stop()
        started = time.monotonic()
        with pytest.raises(OffsetsUnavailableError) as caught:
            reader.read(topic, "g")
        assert time.monotonic() - started < 5
        assert caught.value.retryable and topic in caught.value.message

        broker = start_kafka(port, log_path=tmp_path / "tansu.log")  # in-memory storage: the topic is gone
        deadline = time.monotonic() + 15
        while True:
            try:
                assert reader.read(topic, "g") == []
                break
            except OffsetsUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # The reader's consumer still has the topic assigned; its metadata refreshes must not recreate it.
        time.sleep(1.0)
        assert reader.read(topic, "g") == []
        fresh = Broker(bootstrap)
        try:
            assert topic not in fresh.admin.list_topics()
        finally:
            fresh.close()
    finally:
        reader.close()
        topics.close()
        broker.stop()


def test_failed_connections_do_not_leak_threads():
    reader = OffsetReader({"bootstrap_servers": [f"127.0.0.1:{free_port()}"]}, timeout_s=0.3)
    before = threading.active_count()
    try:
        for _ in range(3):
            with pytest.raises(OffsetsUnavailableError, match="Unable to bootstrap"):
                reader.read("t", "g")
        assert threading.active_count() == before
    finally:
        reader.close()
