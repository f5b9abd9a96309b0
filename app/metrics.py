"""Prometheus metrics, kept in a registry owned by each app.

A per-app ``CollectorRegistry`` (not prometheus-client's global one) lets several apps live
in one process, as they do in the tests.

With several worker processes (``python -m app`` with ``SENTIMENT_WORKERS`` > 1) a scrape
reaches one worker at random, so the workers share prometheus-client's multiprocess mode:
each writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds up all
of them. Counters and histograms sum over workers (dead ones included, so totals never go
back); gauges say how they combine: in-flight requests and queue depth sum over live workers,
``sentiment_model_ready`` is the minimum (1 only when every worker is ready) and
``sentiment_model_info`` is reported per worker (a ``pid`` label), so a rollout in progress
shows which worker serves which version.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# prometheus-client names a process's gauge files gauge_<mode>_<pid>.db.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")


class ServiceMetrics:
    """Every metric the service exports.

    ``multiprocess_dir`` must be the ``PROMETHEUS_MULTIPROC_DIR`` prometheus-client saw when
    it was imported (it picks its storage then); None keeps everything in this process.
    """

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sentiment_http_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._in_flight = 0
        self.requests_in_progress = Gauge(
            "sentiment_http_requests_in_progress",
            "HTTP requests received and not yet answered.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        if multiprocess_dir is None:
            # A plain integer bumped on the event loop thread, read at scrape time: no lock
            # per request. Other processes can't call a function, so shared mode writes.
            self.requests_in_progress.set_function(lambda: float(self._in_flight))
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
            multiprocess_mode="liveall",
        )
        self._live_model: tuple[str, str] | None = None
        self.model_ready = Gauge(
            "sentiment_model_ready",
            "1 when a verified, warm model is live (in every worker).",
            registry=self.registry,
            multiprocess_mode="livemin",
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
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.queue_depth = Gauge(
            "sentiment_queue_depth",
            "Requests waiting for the model.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._queue_depth: Callable[[], int] | None = None

    def request_started(self) -> None:
        """One more request in flight (event loop thread only)."""
        if self.multiprocess_dir is None:
            self._in_flight += 1
        else:
            self.requests_in_progress.inc()

    def request_finished(self, route: str, method: str, status: int, started: float) -> None:
        """Count one answered request and its latency since ``started`` (perf_counter)."""
        if self.multiprocess_dir is None:
            self._in_flight -= 1
        else:
            self.requests_in_progress.dec()
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            # labels() validates and hashes its arguments on every call; requests reuse the
            # few (route template, method, status) combinations, so resolve each once.
            children = (
                self.requests.labels(route, method, str(status)),
                self.request_latency.labels(route),
            )
            self._request_children[key] = children
        counter, latency = children
        counter.inc()
        latency.observe(time.perf_counter() - started)

    def observe_batch(self, texts: int, seconds: float) -> None:
        """Record one model call (from the model thread; prometheus-client is thread-safe)."""
        self.batch_size.observe(texts)
        self.inference_latency.observe(seconds)
        if self._queue_depth is not None and self.multiprocess_dir is not None:
            self.queue_depth.set(self._queue_depth())

    def track_queue_depth(self, depth: Callable[[], int]) -> None:
        """Read the queue depth at scrape time (in shared mode: after every model call)."""
        self._queue_depth = depth
        if self.multiprocess_dir is None:
            self.queue_depth.set_function(lambda: float(depth()))

    def set_live_model(self, name: str, version: str) -> None:
        """Make ``version`` the only one reported as served by this process."""
        previous, self._live_model = self._live_model, (name, version)
        if self.multiprocess_dir is None:
            self.model_info.clear()
        elif previous is not None and previous != self._live_model:
            # Another process's files can't forget a label; 0 says "no longer served".
            self.model_info.labels(*previous).set(0)
        self.model_info.labels(name, version).set(1)
        self.model_ready.set(1)

    def render(self) -> bytes:
        """The text exposition format (in shared mode: every worker's values combined)."""
        registry = self.registry
        if self.multiprocess_dir is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(self.multiprocess_dir))
        exposition: bytes = generate_latest(registry)
        return exposition

    def forget_dead_processes(self) -> None:
        """Drop the live gauges of workers that died without cleaning up (crash, kill -9).

        Their counters stay: totals must not go back when a worker is replaced.
        """
        if self.multiprocess_dir is None:
            return
        pids = set()
        for path in self.multiprocess_dir.glob("gauge_live*.db"):
            match = _LIVE_GAUGE_FILE.fullmatch(path.name)
            if match:
                pids.add(int(match.group(1)))
        for pid in pids - {os.getpid()}:
            if not _process_alive(pid):
                multiprocess.mark_process_dead(pid, str(self.multiprocess_dir))

    def close(self) -> None:
        """This process is stopping: its live gauges no longer count."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), str(self.multiprocess_dir))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True
