"""Every WAKESERVE_* variable the docs name is a settings field, and every field is documented."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer

from events import kafka
from events.settings import EventSettings
from functions.serving.settings import PredictorSettings
from scalers.external import ScalerSettings
from wakeserve.settings import UpSettings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
FIELDS = {
    f"WAKESERVE_{name.upper()}"
    for cls in (PredictorSettings, EventSettings, UpSettings, ScalerSettings)
    for name in cls.model_fields
}


def test_documented_variables_are_fields_and_fields_are_documented():
    documented = set(re.findall(r"WAKESERVE_[A-Z0-9_]+", DOC.read_text())) - {"WAKESERVE_"}
    assert documented - FIELDS == set()
    assert FIELDS - documented == set()


def test_settings_read_the_environment(monkeypatch):
    monkeypatch.setenv("WAKESERVE_PAYLOAD_BUCKETS", "a, b,,c")
    monkeypatch.setenv("WAKESERVE_MAX_IN_FLIGHT", "7")
    monkeypatch.setenv("WAKESERVE_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("WAKESERVE_KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("WAKESERVE_KAFKA_SASL_PASSWORD", "hunter2-not-real")
    settings = EventSettings()
    assert settings.allowed_buckets == frozenset({"a", "b", "c"})
    assert settings.max_in_flight == 7
    config = settings.kafka_config()
    assert config["sasl_plain_password"] == "hunter2-not-real" and "hunter2" not in repr(settings)
    assert settings.topics.requests("embedder") == "wakeserve.embedder.requests"
    assert settings.topics.group("embedder") == "wakeserve-embedder"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"WAKESERVE_KAFKA_BOOTSTRAP": "a:9092, b:9092,"},
            {"bootstrap.servers": "a:9092,b:9092", "security.protocol": "PLAINTEXT"},
        ),
        (
            {
                "WAKESERVE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "WAKESERVE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "WAKESERVE_KAFKA_SASL_USERNAME": "u",
                "WAKESERVE_KAFKA_SASL_PASSWORD": "not-a-real-secret",
                "WAKESERVE_KAFKA_SSL_CAFILE": "/etc/ca.crt",
            },
            {
                "bootstrap.servers": "127.0.0.1:9092",
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "u",
                "sasl.password": "not-a-real-secret",
                "ssl.ca.location": "/etc/ca.crt",
            },
        ),
        (
            {"WAKESERVE_KAFKA_SECURITY_PROTOCOL": "SSL", "WAKESERVE_KAFKA_SSL_CAFILE": "/ca.pem"},
            {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "SSL", "ssl.ca.location": "/ca.pem"},
        ),
    ],
    ids=["plain", "sasl_ssl", "ssl"],
)
def test_librdkafka_settings_carry_the_same_connection(monkeypatch, env, expected):
    for name in [n for n in os.environ if n.startswith("WAKESERVE_KAFKA")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert EventSettings().rdkafka_config() == expected


@pytest.mark.parametrize(
    "connection",
    [
        {},
        {
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "u",
            "kafka_sasl_password": "not-a-real-secret",
        },
    ],
    ids=["plain", "sasl"],
)
def test_librdkafka_clients_accept_the_configuration(connection):
    """librdkafka rejects unknown or mistyped properties when a client is built; nothing connects here."""
    settings = EventSettings(kafka_bootstrap="127.0.0.1:1", **connection)
    producer = kafka.make_rd_producer(settings)
    assert producer.flush(0) == 0  # built, and nothing queued
    consumer = kafka.make_rd_consumer(settings, "wakeserve-echo")
    try:
        assert consumer.assignment() == []  # built, subscribed to nothing yet
    finally:
        consumer.close()
    # The same check refuses what librdkafka does not know, so a typo in events/kafka.py fails above.
    with pytest.raises(KafkaException, match="No such configuration property"):
        Producer({**settings.rdkafka_config(), "enable.idempotency": True})
