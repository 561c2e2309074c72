"""Settings shared by every component that touches Kafka or S3 payloads (``WAKESERVE_*``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from core.listener_settings import ListenerSettings
from events.contract import Topics


class EventSettings(ListenerSettings):
    """Kafka connection, topics, payload buckets and the limits of the asynchronous path, and the bounds of
    the HTTP listeners that take events in (the ingress, and the gateway hosting it)."""

    model_config = SettingsConfigDict(env_prefix="WAKESERVE_", extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port].")
    kafka_security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    kafka_sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.")
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (from a Secret; never logged).")
    kafka_ssl_cafile: str | None = Field(None, description="CA bundle for SSL/SASL_SSL.")
    kafka_session_timeout_ms: int = Field(10_000, ge=1000, description="Consumer group session timeout.")
    kafka_fetch_max_wait_ms: int = Field(
        20,
        ge=1,
        le=10_000,
        description=(
            "How long the broker may hold the request consumer's fetch when no record is ready. The embedded "
            "tansu does not answer a waiting fetch when records arrive, so this bounds an idle replica's pick-up "
            "delay; Kafka does, so a cluster can raise it to cut idle fetches."
        ),
    )
    s3_endpoint: str | None = Field(None, description="S3 API endpoint URL; unset means AWS. Credentials: AWS_*.")
    payload_buckets: str = Field(
        "wakeserve-payloads", description="Comma-separated buckets a dataref may point into (the allowlist)."
    )
    results_bucket: str = Field("wakeserve-results", description="Bucket for results over the inline limit.")
    topic_prefix: str = Field("wakeserve", description="Requests for function F go to <prefix>.F.requests.")
    results_topic: str = Field("wakeserve.results", description="Topic of result and error events.")
    deadletter_topic: str = Field("wakeserve.deadletter", description="Topic of dead-letter records.")
    inline_result_limit: int = Field(64 * 1024, ge=0, description="Results larger than this go to S3 by dataref.")
    max_payload_bytes: int = Field(16 * 1024 * 1024, ge=1, description="Largest dataref payload that is fetched.")
    max_inline_event_bytes: int = Field(1024 * 1024, ge=1, description="Largest inline event data at the ingress.")
    ingress_ack_timeout_s: float = Field(
        30.0, gt=0, le=300, description="How long the ingress waits for the broker's acknowledgement before a 503."
    )
    max_in_flight: int = Field(256, ge=1, description="Events being processed or awaiting their ack, per consumer.")
    max_attempts: int = Field(5, ge=1, description="Tries for a transient failure before it is dead-lettered.")
    retry_base_ms: float = Field(100, ge=0, description="First retry backoff; doubles each attempt.")
    retry_max_ms: float = Field(5_000, ge=0, description="Longest retry backoff.")
    event_source: str = Field("/wakeserve", description="'source' attribute of the events wakeserve emits.")

    @property
    def allowed_buckets(self) -> frozenset[str]:
        return frozenset(b.strip() for b in self.payload_buckets.split(",") if b.strip())

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix, results=self.results_topic, deadletter=self.deadletter_topic)

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap.split(",") if s.strip()]

    def kafka_config(self) -> dict[str, Any]:
        """Connection settings for kafka-python clients."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            config["sasl_mechanism"] = self.kafka_sasl_mechanism
            config["sasl_plain_username"] = self.kafka_sasl_username
            config["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        if self.kafka_ssl_cafile:
            config["ssl_cafile"] = self.kafka_ssl_cafile
        return config

    def rdkafka_config(self) -> dict[str, Any]:
        """The same connection settings in librdkafka's names (the replica's consumer and reply producer)."""
        config: dict[str, Any] = {
            "bootstrap.servers": ",".join(self.bootstrap_servers),
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
            config["sasl.username"] = self.kafka_sasl_username
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
        if self.kafka_ssl_cafile:
            config["ssl.ca.location"] = self.kafka_ssl_cafile
        return config
