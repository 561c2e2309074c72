"""Settings of one predictor replica (``wakeserve serve``), read from ``WAKESERVE_*`` variables and flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from core.listener_settings import ListenerSettings


class PredictorSettings(ListenerSettings):
    """One replica of one function. Flags on ``wakeserve serve`` override the environment."""

    model_config = SettingsConfigDict(env_prefix="WAKESERVE_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the HTTP and gRPC servers bind; 0.0.0.0 in containers.")
    http_port: int = Field(8080, description="Port of the v2 REST API, /metrics and the health routes.")
    grpc_port: int = Field(8081, description="Port of the v2 gRPC API; 0 disables gRPC.")
    admin_host: str = Field(
        "127.0.0.1", description="Address of the admin listener (control API, startup, OpenAPI); keep it private."
    )
    admin_port: int = Field(8082, ge=0, description="Port of the admin listener; 0 picks a free port (logged).")
    admin_token: SecretStr | None = Field(
        None, description="Bearer token every admin request must carry. Unset (and no file): no token is asked."
    )
    admin_token_file: Path | None = Field(None, description="File holding the admin token; read at start.")
    inference_token: SecretStr | None = Field(
        None,
        description="Bearer token the inference port's v2 and CloudEvents routes require (health, "
        "readiness and /metrics stay open). Unset: no token is asked.",
    )
    grpc_max_concurrent_rpcs: int = Field(
        1024, ge=1, description="RPCs the gRPC server runs at once; more are refused with RESOURCE_EXHAUSTED."
    )
    enable_repository_api: bool = Field(
        False, description="Serve KServe's repository load/unload extension (admin listener and gRPC)."
    )
    model_uri_allowlist: str = Field(
        "s3://wakeserve-models/",
        description="Comma-separated prefixes a candidate's model_uri must start with; the function's packaged "
        "directory is always allowed, the payload and results buckets never.",
    )
    allow_skip_gates: str = Field(
        "", description="Gates a control API caller may skip (comma-separated from contract, golden, latency, memory)."
    )
    max_artifact_bytes: int = Field(
        2 * 2**30, ge=1, description="Largest artifact directory (bytes on disk) a version may load; more is refused."
    )
    model_uri: str | None = Field(
        None, description="Artifacts of the function: a local directory or s3://bucket/prefix. Unset: packaged default."
    )
    encoder_uri: str | None = Field(
        None, description="Sentence-transformer checkpoint under the classifier head. Unset: packaged MiniLM."
    )
    model_cache_dir: Path = Field(
        Path.home() / ".cache" / "wakeserve" / "models", description="Where s3:// artifacts are cached by content."
    )
    s3_endpoint: str | None = Field(None, description="S3 API endpoint URL; unset means AWS. Credentials: AWS_*.")
    max_batch_size: int | None = Field(
        None, ge=1, description="Rows per batch; 1 turns batching off. Unset: function default."
    )
    max_batch_delay_ms: float | None = Field(
        None, ge=0, description="How long the first request of a batch may wait for others. Unset: function default."
    )
    max_queue: int | None = Field(
        None, ge=1, description="Requests that may wait for the model; more get 503. Unset: function default."
    )
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads. Unset: torch's default.")
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest accepted request body; more is 413.")
    grace_period_s: float = Field(30.0, ge=0, description="How long shutdown waits for in-flight requests.")
    supervisor_pid: int | None = Field(
        None,
        description="Pid of the process that started this replica (`wakeserve up`); the replica stops when it is gone.",
    )
    log_level: str = Field("INFO", description="Python logging level.")
    model_version: str | None = Field(
        None, description="Version label of the model served at start. Unset: the version the artifacts declare."
    )
    gate_latency_factor: float = Field(
        1.5, gt=0, description="A candidate's median latency may be at most this times the active version's."
    )
    gate_latency_runs: int = Field(15, ge=1, le=1000, description="Interleaved runs per version in the latency gate.")
    swap_memory_budget_mb: float = Field(
        4096.0, gt=0, description="Largest resident memory (MiB) with both versions loaded; more fails the gate."
    )
    watch: bool = Field(False, description="Reload the function's source files when they change (dev loop).")
    watch_interval_s: float = Field(0.5, gt=0, description="How often watch mode looks at the source files.")
    watch_skip_gates: str = Field(
        "golden,latency", description="Gates watch mode skips (comma-separated): edits may change outputs."
    )

    def admin_secret(self) -> str | None:
        """The admin token from ``admin_token`` or, failing that, ``admin_token_file``; None when neither."""
        if self.admin_token is not None and self.admin_token.get_secret_value():
            return self.admin_token.get_secret_value()
        if self.admin_token_file is not None:
            return self.admin_token_file.read_text().strip() or None
        return None

    def inference_secret(self) -> str | None:
        token = self.inference_token.get_secret_value() if self.inference_token is not None else ""
        return token or None

    def skippable_gates(self) -> frozenset[str]:
        return frozenset(g.strip() for g in self.allow_skip_gates.split(",") if g.strip())

    def uri_allowlist(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.model_uri_allowlist.split(",") if p.strip())
