"""Prometheus metrics, kept in a registry owned by each app.

A per-app ``CollectorRegistry`` (not prometheus-client's global one) lets several apps live
in one process, as they do in the tests. With several uvicorn workers each process reports
its own numbers; scrape them per pod/process or run one worker per container.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServiceMetrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sentiment_http_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.requests_in_progress = Gauge(
            "sentiment_http_requests_in_progress",
            "HTTP requests received and not yet answered.",
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "sentiment_http_request_duration_seconds",
            "Time from request start to the end of the response, by route template.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "sentiment_predictions",
            "Texts scored, by predicted label.",
            ["label"],
            registry=self.registry,
        )
        self.positive_predictions = self.predictions.labels("positive")
        self.negative_predictions = self.predictions.labels("negative")
        self.model_info = Gauge(
            "sentiment_model_info",
            "1 for the model version currently served.",
            ["name", "version"],
            registry=self.registry,
        )
        self.model_ready = Gauge(
            "sentiment_model_ready",
            "1 when a verified, warm model is live.",
            registry=self.registry,
        )
        self.reloads = Counter(
            "sentiment_model_reloads",
            "Model version loads by outcome (success: verified and swapped in; failure: refused).",
            ["outcome"],
            registry=self.registry,
        )
        self.reload_successes = self.reloads.labels("success")
        self.reload_failures = self.reloads.labels("failure")
        self.batch_size = Histogram(
            "sentiment_batch_size_texts",
            "Texts per model call after micro-batching.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.inference_latency = Histogram(
            "sentiment_inference_duration_seconds",
            "Duration of one model call (one micro-batch).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "sentiment_queue_depth",
            "Requests waiting for the model.",
            registry=self.registry,
        )

    def observe_batch(self, texts: int, seconds: float) -> None:
        """Record one model call (from the model thread; prometheus-client is thread-safe)."""
        self.batch_size.observe(texts)
        self.inference_latency.observe(seconds)

    def track_queue_depth(self, depth: Callable[[], int]) -> None:
        """Read the queue depth at scrape time instead of updating it per request."""
        self.queue_depth.set_function(lambda: float(depth()))

    def set_live_model(self, name: str, version: str) -> None:
        """Make ``version`` the only one reported as served."""
        self.model_info.clear()
        self.model_info.labels(name, version).set(1)
        self.model_ready.set(1)

    def render(self) -> bytes:
        """The text exposition format."""
        exposition: bytes = generate_latest(self.registry)
        return exposition
