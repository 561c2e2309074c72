from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest

from core.processes import ChildProcess, free_port, start_kafka, start_s3
from core.s3 import make_s3_client
from core.s3_store import key_file, split_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/bucket/a/b.json", ("bucket", "a/b.json")),
        ("/bucket/with%20space", ("bucket", "with space")),
        ("/bucket", ("bucket", "")),
        ("/bucket/", ("bucket", "")),
        ("/", None),
        ("", None),
        ("/moto-api/recorder/start-recording", None),
    ],
)
def test_split_path(path: str, expected: tuple[str, str] | None) -> None:
    assert split_path(path) == expected


def test_key_files_are_flat_and_distinct() -> None:
    names = {key_file(k) for k in ("a/b", "a_b", "a%2Fb", "x" * 900)}
    assert len(names) == 4 and all("/" not in n and len(n) == 64 for n in names)


def _start(port: int, data: Path, log: Path) -> ChildProcess:
    return start_s3(port, data_dir=data, log_path=log)


def test_objects_survive_a_kill_and_deletes_stay_deleted(tmp_path: Path) -> None:
    port = free_port()
    data, log = tmp_path / "s3", tmp_path / "s3.log"
    server = _start(port, data, log)
    client = make_s3_client(f"http://127.0.0.1:{port}")
    try:
        client.create_bucket(Bucket="kept")
        client.put_object(Bucket="kept", Key="a/one", Body=b"1", Metadata={"owner": "me"}, ContentType="text/plain")
        client.put_object(Bucket="kept", Key="a/two", Body=b"2")
        client.put_object(Bucket="kept", Key="a/three", Body=b"3")
        client.copy_object(Bucket="kept", Key="b/copy", CopySource={"Bucket": "kept", "Key": "a/two"})
        client.delete_object(Bucket="kept", Key="a/two")
        client.delete_objects(Bucket="kept", Delete={"Objects": [{"Key": "a/three"}]})
        client.create_bucket(Bucket="gone")
        client.delete_bucket(Bucket="gone")
        # SIGKILL: only what was mirrored before each answer can come back.
        server.signal(signal.SIGKILL)
        server.proc.wait(10)
        server.stop()
        server = _start(port, data, log)
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["kept"]
        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="kept")["Contents"])
        assert keys == ["a/one", "b/copy"]
        one = client.get_object(Bucket="kept", Key="a/one")
        assert one["Body"].read() == b"1"
        assert one["Metadata"] == {"owner": "me"} and one["ContentType"] == "text/plain"
        assert client.get_object(Bucket="kept", Key="b/copy")["Body"].read() == b"2"
    finally:
        server.stop()


def test_broker_topics_and_offsets_survive_restarts_of_both(tmp_path: Path) -> None:
    """tansu on ``s3://`` storage over the persistent S3: a restart of both keeps records and offsets."""
    from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    from core.processes import s3_storage_env

    s3_port, kafka_port = free_port(), free_port()
    data = tmp_path / "s3"
    endpoint = f"http://127.0.0.1:{s3_port}"
    env = s3_storage_env(endpoint, {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"})
    s3 = _start(s3_port, data, tmp_path / "s3.log")
    make_s3_client(endpoint).create_bucket(Bucket="broker")
    broker = start_kafka(kafka_port, storage="s3://broker/", env=env, log_path=tmp_path / "tansu.log")
    bootstrap, topic, group = f"127.0.0.1:{kafka_port}", f"t-{uuid.uuid4().hex[:6]}", "g"
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(topic, 1, 1)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for i in range(5):
            producer.send(topic, str(i).encode()).get(10)
        producer.close()
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(3, None, -1)})
        consumer.close()
        broker.stop()
        s3.stop()
        s3 = _start(s3_port, data, tmp_path / "s3.log")
        broker = start_kafka(kafka_port, storage="s3://broker/", env=env, log_path=tmp_path / "tansu.log")
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, consumer_timeout_ms=10000
        )
        consumer.assign([tp])
        assert consumer.committed(tp) == 3
        consumer.seek(tp, 0)
        values = []
        for record in consumer:
            values.append(record.value)
            if len(values) == 5:
                break
        consumer.close()
        assert values == [b"0", b"1", b"2", b"3", b"4"]
    finally:
        broker.stop()
        s3.stop()
