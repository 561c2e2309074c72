"""Prometheus metrics of a predictor replica, registered on an injected registry."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class PredictorMetrics:
    """Requests by model and outcome, latency, batch sizes and queue depth."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self.requests = Counter(
            "wakeserve_requests_total",
            "Inference requests served, by model, outcome (ok or an error code) and model version.",
            ["model", "outcome", "version"],
            registry=registry,
        )
        self.latency = Histogram(
            "wakeserve_request_duration_seconds",
            "Time from a request reaching the model to its response, queueing included, by model version.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "wakeserve_batch_size",
            "Rows per model execution.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "wakeserve_queue_depth",
            "Requests waiting for or running in the model.",
            ["model"],
            registry=registry,
        )
        self.ready = Gauge(
            "wakeserve_model_ready", "1 when the model is loaded and warmed up.", ["model"], registry=registry
        )

    def observe_request(self, model: str, outcome: str, version: str, elapsed_s: float) -> None:
        """Count one request and time it; the labelled series are looked up once per label set (bounded)."""
        key = (model, outcome, version)
        children = self._request_children.get(key)
        if children is None:
            if len(self._request_children) >= 256:
                self._request_children.clear()
            children = self._request_children[key] = (
                self.requests.labels(model, outcome, version),
                self.latency.labels(model, version),
            )
        children[0].inc()
        children[1].observe(elapsed_s)
