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

Per-request values are tallied in plain Python on the event loop and added to the metrics
in bulk (``flush``): when the worker goes idle (no request in flight), before every scrape,
and otherwise within ``_FLUSH_SECONDS``. Each value written one at a time cost the event loop
a sizeable share of a request under load (several locked writes to the shared files, the pid
check in each, the bucket walk); in bulk that cost is paid once per flush.

What the model thread observes (each batch's size and duration, the input metrics) goes the
same way: it only queues the values (``DeferredObservations``) and the event loop's flush
writes them. Written on the model thread, they sat between the model's answer and the response:
at concurrency 1 every request waited for them.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "BulkHistogram", "DeferredObservations", "ServiceMetrics"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# prometheus-client names a process's gauge files gauge_<mode>_<pid>.db.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")
# Longest a tallied value waits to reach the metrics while requests stay in flight: far below
# any scrape interval, yet many requests apart under load.
_FLUSH_SECONDS = 0.05
# Up to this many values, `observe` value by value is cheaper than binning with numpy, whose
# fixed cost per call would otherwise weigh on every small model call.
_SMALL_BATCH = 8
# A request's metric labels: REST (route template, method, status, version), gRPC (method,
# code, version); the version is the one that answered ("" when none did).
_RequestKey = tuple[str, str, int, str] | tuple[str, str, str]


class BulkHistogram(Histogram):  # type: ignore[misc]
    """A Histogram that can take many values at once.

    A histogram's ``observe`` walks its buckets in Python under a lock, once per value.
    ``observe_many`` bins all values with numpy (``searchsorted`` + ``bincount``) and adds one
    increment per non-empty bucket, which is what ``observe`` would have done value by value
    (same ``le`` semantics: a value equal to a bound lands in that bucket). It works in both
    storage modes (local and multiprocess files), since it uses the same value objects
    ``observe`` does; children made by ``labels`` are BulkHistograms too.
    """

    def observe_many(self, values: npt.NDArray[Any]) -> None:
        if values.size <= _SMALL_BATCH:
            for value in values.tolist():  # numpy's fixed cost outweighs a few Python walks
                self.observe(value)
            return
        bounds = np.asarray(self._upper_bounds, dtype=np.float64)
        exact = values.astype(np.float64)  # the sum in float64, as observe() adds floats
        counts = np.bincount(np.searchsorted(bounds, exact, side="left"), minlength=len(bounds))
        self._sum.inc(float(exact.sum()))
        for index in np.flatnonzero(counts):
            self._buckets[int(index)].inc(int(counts[index]))


class DeferredObservations:
    """Values observed on any thread, added to their metrics by ``flush`` on the event loop.

    ``observe`` and ``inc`` only append to a deque (atomic in CPython, so no lock), which keeps
    the model thread's share to a few appends per batch. ``flush`` drains the deque and writes
    each metric once, however many batches it holds: one ``observe_many`` per histogram and
    one ``inc`` per counter.
    """

    def __init__(self) -> None:
        self._pending: collections.deque[
            tuple[BulkHistogram, npt.NDArray[Any] | float] | tuple[Counter, int]
        ] = collections.deque()

    def observe(self, histogram: BulkHistogram, values: npt.NDArray[Any] | float) -> None:
        """Queue one value or an array of them for ``histogram`` (any thread)."""
        self._pending.append((histogram, values))

    def inc(self, counter: Counter, amount: int) -> None:
        """Queue an increment of ``counter`` (any thread)."""
        self._pending.append((counter, amount))

    def flush(self) -> None:
        """Write what is queued, each metric once (one thread at a time: the event loop)."""
        values_of: dict[BulkHistogram, list[npt.NDArray[Any] | float]] = {}
        amount_of: dict[Counter, int] = {}
        pending = self._pending
        while pending:
            metric, value = pending.popleft()
            if isinstance(metric, BulkHistogram):
                values_of.setdefault(metric, []).append(value)
            else:
                amount_of[metric] = amount_of.get(metric, 0) + int(value)
        for histogram, parts in values_of.items():
            histogram.observe_many(np.concatenate([np.ravel(part) for part in parts]))
        for counter, amount in amount_of.items():
            counter.inc(amount)


class ServiceMetrics:
    """Every metric the service exports.

    ``multiprocess_dir`` must be the ``PROMETHEUS_MULTIPROC_DIR`` prometheus-client saw when
    it was imported (it picks its storage then); None keeps everything in this process.
    """

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sentiment_http_requests",
            "HTTP requests by route template, method, status code and the model version that "
            "answered (empty when none did).",
            ["route", "method", "status", "version"],
            registry=self.registry,
        )
        self.requests_in_progress = Gauge(
            "sentiment_http_requests_in_progress",
            "Requests received and not yet answered (REST requests and gRPC calls).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.request_latency = BulkHistogram(
            "sentiment_http_request_duration_seconds",
            "Time from request start to the end of the response, by route template and version.",
            ["route", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        # gRPC calls have their own families: a gRPC status code is not an HTTP status, and
        # a full method name (/package.Service/Method) is the gRPC side's route.
        self.grpc_requests = Counter(
            "sentiment_grpc_requests",
            "gRPC calls by full method name, status code (OK, INVALID_ARGUMENT, ...) and the "
            "model version that answered (empty when none did).",
            ["method", "code", "version"],
            registry=self.registry,
        )
        self.grpc_request_latency = BulkHistogram(
            "sentiment_grpc_request_duration_seconds",
            "Time from a gRPC call's start to its status, by full method name and version.",
            ["method", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "sentiment_predictions",
            "Texts scored, by predicted label and the model version that scored them.",
            ["label", "version"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "sentiment_model_info",
            "1 for each model version served (0 once no longer served, with several workers).",
            ["name", "version"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
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
        self.batch_size = BulkHistogram(
            "sentiment_batch_size_texts",
            "Texts per model call after micro-batching.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.inference_latency = BulkHistogram(
            "sentiment_inference_duration_seconds",
            "Duration of one model call (one micro-batch).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._request_children: dict[_RequestKey, tuple[Counter, BulkHistogram]] = {}
        self._prediction_children: dict[tuple[str, str], Counter] = {}
        # The tally (event loop thread only): requests in flight (REST and gRPC), and per
        # (route, method, status) or gRPC (method, code) the latencies of answered requests,
        # and predicted labels, not yet flushed.
        self._in_flight = 0
        self._latencies: dict[_RequestKey, list[float]] = {}
        self._labels: dict[str, list[int]] = {}  # version -> [positives, negatives]
        # What the model thread observed (batches, input metrics), written by flush.
        self.deferred = DeferredObservations()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self.queue_depth = Gauge(
            "sentiment_queue_depth",
            "Requests waiting for the model.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._storage: _Storage = (
            _LocalStorage(self) if multiprocess_dir is None else _SharedStorage(multiprocess_dir)
        )

    @property
    def in_flight(self) -> int:
        """Requests (and gRPC calls) received and not yet answered (the tally's count)."""
        return self._in_flight

    def request_started(self) -> None:
        """One more request in flight (event loop thread only)."""
        self._in_flight += 1
        self._flush_soon()

    def request_finished(
        self, route: str, method: str, status: int, started: float, version: str = ""
    ) -> None:
        """Tally one answered request and its latency since ``started`` (perf_counter), with
        the model version that answered it (none: "")."""
        self._finished((route, method, status, version), started)

    def grpc_call_finished(self, method: str, code: str, started: float, version: str = "") -> None:
        """Tally one gRPC call (full method name, status code name, answering version) ended
        since ``started``."""
        self._finished((method, code, version), started)

    def _finished(self, key: _RequestKey, started: float) -> None:
        self._in_flight -= 1
        latencies = self._latencies.get(key)
        if latencies is None:
            latencies = self._latencies[key] = []
        latencies.append(time.perf_counter() - started)
        if self._in_flight == 0:
            self.flush()  # idle: nothing should wait for a timer
        else:
            self._flush_soon()

    def count_predictions(self, positive: int, negative: int, version: str) -> None:
        """Tally texts ``version`` scored, by predicted label (event loop thread only)."""
        counts = self._labels.get(version)
        if counts is None:
            counts = self._labels[version] = [0, 0]
        counts[0] += positive
        counts[1] += negative

    def flush(self) -> None:
        """Add the tally to the metrics (event loop thread only).

        A pending flush timer stays armed: at low load every request ends idle and flushes,
        and cancelling the timer there made the next request arm a new one; left alone, it
        fires once within ``_FLUSH_SECONDS`` and finds little or nothing to add.
        """
        latencies, self._latencies = self._latencies, {}
        for key, values in latencies.items():
            counter, histogram = self._request_children_of(key)
            counter.inc(len(values))
            histogram.observe_many(np.asarray(values))
        labels, self._labels = self._labels, {}
        for version, (positives, negatives) in labels.items():
            if positives:
                self._prediction_child("positive", version).inc(positives)
            if negatives:
                self._prediction_child("negative", version).inc(negatives)
        self.deferred.flush()
        self._storage.publish_in_flight(self.requests_in_progress, self._in_flight)
        self._storage.publish_queue_depth(self.queue_depth)

    def _prediction_child(self, label: str, version: str) -> Counter:
        """The predictions counter of (label, version), resolved once (as request children)."""
        child = self._prediction_children.get((label, version))
        if child is None:
            child = self._prediction_children[label, version] = self.predictions.labels(
                label, version
            )
        return child

    def _flush_soon(self) -> None:
        """Make sure a flush runs within ``_FLUSH_SECONDS`` (at once outside an event loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flush_timer is not None and self._flush_loop is loop:
            return
        self._flush_loop = loop  # a new loop (tests run apps in several): the old timer is gone
        self._flush_timer = loop.call_later(_FLUSH_SECONDS, self._timed_flush)

    def _timed_flush(self) -> None:
        self._flush_timer = None
        self.flush()

    def _request_children_of(self, key: _RequestKey) -> tuple[Counter, BulkHistogram]:
        children = self._request_children.get(key)
        if children is None:
            # labels() validates and hashes its arguments on every call; requests reuse the
            # few (route template, method, status) combinations, so resolve each once.
            if len(key) == 3:  # a gRPC call: (full method name, status code name, version)
                method, code, version = key
                children = (
                    self.grpc_requests.labels(method, code, version),
                    self.grpc_request_latency.labels(method, version),
                )
            else:
                route, http_method, status, version = key
                children = (
                    self.requests.labels(route, http_method, str(status), version),
                    self.request_latency.labels(route, version),
                )
            self._request_children[key] = children
        return children

    def observe_batch(self, texts: int, seconds: float) -> None:
        """Record one model call (model thread: queued, written by the next ``flush``)."""
        self.deferred.observe(self.batch_size, float(texts))
        self.deferred.observe(self.inference_latency, seconds)

    def track_queue_depth(self, depth: Callable[[], int]) -> None:
        """Report the queue depth ``depth`` returns (at scrape time, or at each flush)."""
        self._storage.track_queue_depth(self.queue_depth, depth)

    def set_served_models(self, name: str, versions: list[str]) -> None:
        """Make ``versions`` the ones reported as served by this process (ready when any)."""
        current = {(name, version) for version in versions}
        self._storage.forget_served_models(self.model_info, current)
        for labels in current:
            self.model_info.labels(*labels).set(1)
        self.model_ready.set(1 if versions else 0)

    def render(self) -> bytes:
        """The text exposition format (in shared mode: every worker's values combined)."""
        self.flush()
        exposition: bytes = generate_latest(self._storage.exposed(self.registry))
        return exposition

    def forget_dead_processes(self) -> None:
        """Drop the live gauges of workers that died without cleaning up (crash, kill -9)."""
        self._storage.forget_dead_processes()

    def close(self) -> None:
        """This process is stopping: its tally is flushed and its live gauges no longer count."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self.flush()
        self._storage.close()


class _Storage(Protocol):
    """Where values live: the only place the two modes differ."""

    def publish_in_flight(self, in_progress: Gauge, count: int) -> None: ...
    def track_queue_depth(self, gauge: Gauge, depth: Callable[[], int]) -> None: ...
    def publish_queue_depth(self, gauge: Gauge) -> None: ...
    def forget_served_models(self, info: Gauge, current: set[tuple[str, str]]) -> None: ...
    def exposed(self, registry: CollectorRegistry) -> CollectorRegistry: ...
    def forget_dead_processes(self) -> None: ...
    def close(self) -> None: ...


class _LocalStorage:
    """One process: values stay in the app's registry; gauges are read at scrape time."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        metrics.requests_in_progress.set_function(lambda: float(metrics.in_flight))

    def publish_in_flight(self, in_progress: Gauge, count: int) -> None:
        pass  # the gauge reads the tally's count at scrape time

    def track_queue_depth(self, gauge: Gauge, depth: Callable[[], int]) -> None:
        gauge.set_function(lambda: float(depth()))

    def publish_queue_depth(self, gauge: Gauge) -> None:
        pass  # the gauge reads the depth at scrape time

    def forget_served_models(self, info: Gauge, current: set[tuple[str, str]]) -> None:
        info.clear()

    def exposed(self, registry: CollectorRegistry) -> CollectorRegistry:
        return registry

    def forget_dead_processes(self) -> None:
        pass

    def close(self) -> None:
        pass


class _SharedStorage:
    """Several workers: values go to files in ``directory``, a scrape adds up all of them.

    Other processes can't call a function, so gauges are written when they change.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._depth: Callable[[], int] | None = None
        self._served_models: set[tuple[str, str]] = set()
        self._published_in_flight: int | None = None
        self._published_depth: int | None = None

    def publish_in_flight(self, in_progress: Gauge, count: int) -> None:
        # Each write is a locked write to the shared file; an idle worker flushes after
        # every request with the same count (0) each time.
        if count != self._published_in_flight:
            in_progress.set(count)
            self._published_in_flight = count

    def track_queue_depth(self, gauge: Gauge, depth: Callable[[], int]) -> None:
        self._depth = depth

    def publish_queue_depth(self, gauge: Gauge) -> None:
        if self._depth is not None:
            depth = self._depth()
            if depth != self._published_depth:  # a locked write to the shared file
                gauge.set(depth)
                self._published_depth = depth

    def forget_served_models(self, info: Gauge, current: set[tuple[str, str]]) -> None:
        previous, self._served_models = self._served_models, set(current)
        for labels in previous - current:
            # Another process's files can't forget a label; 0 says "no longer served".
            info.labels(*labels).set(0)

    def exposed(self, registry: CollectorRegistry) -> CollectorRegistry:
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=str(self._directory))
        return combined

    def forget_dead_processes(self) -> None:
        # Their counters stay: totals must not go back when a worker is replaced.
        pids = set()
        for path in self._directory.glob("gauge_live*.db"):
            match = _LIVE_GAUGE_FILE.fullmatch(path.name)
            if match:
                pids.add(int(match.group(1)))
        for pid in pids - {os.getpid()}:
            if not _process_alive(pid):
                multiprocess.mark_process_dead(pid, str(self._directory))

    def close(self) -> None:
        multiprocess.mark_process_dead(os.getpid(), str(self._directory))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True
