"""What the asynchronous-path tests share: producing request events and collecting replies."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from events import cloudevent, contract
from events.cloudevent import CloudEvent
from events.settings import EventSettings


def request_event(model: str, *, data: bytes | None = None, dataref: str | None = None, **extra: str) -> CloudEvent:
    attributes = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "/tests",
        "type": contract.REQUEST_TYPE,
        "model": model,
        **extra,
    }
    if dataref:
        attributes["dataref"] = dataref
    elif data is not None:
        attributes["datacontenttype"] = "application/json"
    return CloudEvent(attributes, data)


def texts_payload(texts: list[str]) -> bytes:
    return orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]})


def produce(producer: KafkaProducer, topic: str, events: list[CloudEvent]) -> None:
    futures = []
    for event in events:
        headers, key, value = cloudevent.to_kafka(event)
        futures.append(producer.send(topic, key=key, value=value if value is not None else b"", headers=headers))
    producer.flush(30)
    for f in futures:
        f.get(10)


@dataclass
class Collector:
    """Reads a topic from the beginning without a consumer group."""

    settings: EventSettings
    topic: str
    consumer: KafkaConsumer = field(init=False)
    records: list[tuple[list[tuple[str, bytes]], bytes | None, bytes | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        deadline = time.monotonic() + 30
        while not (parts := self.consumer.partitions_for_topic(self.topic)):
            if time.monotonic() >= deadline:
                self.consumer.close()
                raise AssertionError(f"topic {self.topic} has no partitions after 30s")
            time.sleep(0.1)
        self.consumer.assign([TopicPartition(self.topic, p) for p in sorted(parts)])
        self.consumer.seek_to_beginning()

    def poll(self) -> None:
        for records in self.consumer.poll(timeout_ms=200).values():
            for r in records:
                self.records.append(([(k, v or b"") for k, v in r.headers or []], r.key, r.value))

    def drain(self, timeout: float = 30) -> None:
        """Read what the topic already holds, so a later wait is not spent getting through older records."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = len(self.records)
            self.poll()
            if len(self.records) == before:
                return

    def events(self) -> list[CloudEvent]:
        return [cloudevent.from_kafka(h, k, v) for h, k, v in self.records]

    def by_request(self, ids: set[str]) -> dict[str, list[CloudEvent]]:
        found: dict[str, list[CloudEvent]] = defaultdict(list)
        for event in self.events():
            if event.get("requestid") in ids:
                found[event.get("requestid")].append(event)  # type: ignore[index]
        return found

    def wait_for(self, ids: set[str], timeout: float = 120) -> dict[str, list[CloudEvent]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            found = self.by_request(ids)
            if set(found) >= ids:
                # a little longer, to catch duplicates
                end = time.monotonic() + 1.0
                while time.monotonic() < end:
                    self.poll()
                return self.by_request(ids)
        found = self.by_request(ids)
        raise AssertionError(f"{len(ids - set(found))} of {len(ids)} requests have no reply after {timeout}s")

    def close(self) -> None:
        self.consumer.close()
