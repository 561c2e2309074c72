"""Settings of the one-machine runtime (``wakeserve up``) and of ``wakeserve status``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class UpSettings(BaseSettings):
    """Ports, manifests and limits of ``wakeserve up``. Flags override the environment."""

    model_config = SettingsConfigDict(env_prefix="WAKESERVE_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the gateway, scaler and embedded servers bind.")
    http_port: int = Field(8080, description="Gateway port: /v2 for every function, POST /events, status.")
    kafka_port: int = Field(9092, description="Port of the embedded Kafka broker (when no bootstrap is given).")
    s3_port: int = Field(9000, description="Port of the embedded S3 server (when no S3 endpoint is given).")
    scaler_port: int = Field(9090, description="Port of the KEDA external scaler (gRPC); 0 disables it.")
    manifests: Path = Field(Path("manifests/base"), description="Where the InferenceServices and ScaledObjects are.")
    functions: str | None = Field(None, description="Comma-separated functions to run. Unset: all in the manifests.")
    state_dir: Path = Field(
        Path(".wakeserve"),
        description="Logs of `wakeserve up` and its context file, by which every other command finds it.",
    )
    gateway_token: SecretStr | None = Field(
        None, description="Bearer token the gateway requires on every route but health. Unset: no authentication."
    )
    hold_timeout_s: float = Field(
        120.0, gt=0, description="How long the gateway holds a request for a waking function."
    )
    max_held: int = Field(1000, ge=1, description="Requests held per function while it wakes; more get 503.")
    gateway_keepalive_s: float = Field(
        5.0,
        gt=0,
        description="While a stream waits for its function to wake, the gateway writes an SSE keep-alive comment"
        " this often, so the client and proxies on the way see the connection alive.",
    )
    models_bucket: str = Field("wakeserve-models", description="Bucket `up` uploads the classifier artifact to.")
    kafka_partitions: int = Field(4, ge=1, description="Partitions of each request topic `up` creates.")
    watch: bool = Field(
        False, description="Replicas reload a function's source files when they change (`wakeserve up --watch`)."
    )
    replica_session_timeout_ms: int = Field(
        3000, ge=1000, description="Consumer session timeout of replicas started by `up` (tansu joins in half of it)."
    )
