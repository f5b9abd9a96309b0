"""Shadow scoring: a candidate version scores copies of live requests and answers nobody.

An operator who wants to know whether a new version would change answers before it answers
anyone names it as the shadow (``SENTIMENT_SHADOW_LABEL`` or ``SENTIMENT_SHADOW_VERSION``).
A share of scored requests (``SENTIMENT_SHADOW_PERCENT``) is then copied to it after the
primary version has scored them, and the metrics compare the two on real inputs: whether
their labels agree, and how far apart their probabilities are.

The copy never touches the request path. ``offer`` is called once the primary's answer is
ready and only appends to a small bounded queue (never blocks, never raises); when the queue
is full, because the shadow is slower than the traffic, the copy is dropped and counted, not
queued, so a slow shadow costs no memory and no latency. The shadow scores on its own thread
(not the batcher's, whose model calls answer clients), gathering whatever copies are waiting
into one model call, and a failure there is counted and logged by type only, never seen by a
client. Shadow copies are not traffic the shadow answered, so they feed none of the request
or input metrics.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from app.core.batcher import run_without_wakeup_preemption
from app.core.errors import ServiceError
from app.core.predictor import Label, Predictor
from app.core.registry import ModelRegistry, VersionChoice
from app.metrics import BulkHistogram

logger = logging.getLogger(__name__)

# Copies waiting for the shadow; more are dropped. Enough for the shadow to batch what arrives
# while it scores, too few to build up a backlog.
SHADOW_BACKLOG = 16
# |P(primary) - P(shadow)|: fine steps where versions mostly agree, coarse where they don't.
DIFFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
_JOIN_SECONDS = 5.0


class ShadowMetrics:
    """The shadow's counters, registered in the app's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "sentiment_shadow_requests",
            "Requests copied to the shadow version, by outcome: scored, dropped (the shadow "
            "was behind) or failed (its model call failed).",
            ["outcome"],
            registry=registry,
        )
        self.scored = self.requests.labels("scored")
        self.dropped = self.requests.labels("dropped")
        self.failed = self.requests.labels("failed")
        self.texts = Counter(
            "sentiment_shadow_texts",
            "Texts scored by both the primary and the shadow version, by whether their "
            "labels agree.",
            ["primary", "shadow", "agreement"],
            registry=registry,
        )
        self.difference = BulkHistogram(
            "sentiment_shadow_probability_difference",
            "Per text, |P(positive) of the primary - P(positive) of the shadow|.",
            ["primary", "shadow"],
            buckets=DIFFERENCE_BUCKETS,
            registry=registry,
        )


@dataclass(slots=True)
class _Copy:
    """One request as the primary answered it, waiting for the shadow."""

    primary: Predictor
    shadow: Predictor
    texts: Sequence[str]
    probabilities: list[float]
    labels: list[Label]


class ShadowScorer:
    """Copies a share of scored requests to the ``target`` version and compares its scores."""

    def __init__(
        self,
        registry: ModelRegistry,
        target: VersionChoice,
        percent: float,
        metrics: ShadowMetrics,
        *,
        max_batch_texts: int,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._registry = registry
        self._target = target
        self._share = percent / 100
        self._metrics = metrics
        self._max_batch_texts = max_batch_texts
        self._draw = draw
        self._queue: queue.Queue[_Copy | None] = queue.Queue(maxsize=SHADOW_BACKLOG)
        self._thread: threading.Thread | None = None
        self._closing = False

    def start(self) -> None:
        """Start the shadow's thread."""
        self._thread = threading.Thread(target=self._work, name="model-shadow", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread once its current model call ends; waiting copies are dropped."""
        self._closing = True
        with contextlib.suppress(queue.Full):  # busy: it sees _closing after its current call
            self._queue.put_nowait(None)  # wakes an idle thread
        if self._thread is not None:
            self._thread.join(_JOIN_SECONDS)

    def offer(
        self,
        primary: Predictor,
        texts: Sequence[str],
        probabilities: list[float],
        labels: list[Label],
    ) -> None:
        """Copy this answered request to the shadow, for its share of requests (event loop;
        never blocks, never raises)."""
        if self._draw() >= self._share:
            return
        try:
            shadow = self._registry.resolve(self._target)
        except ServiceError:
            return  # not loaded (only while starting or stopping): nothing to compare
        if shadow is primary:
            return  # the shadow answered this one itself (e.g. the canary's share)
        try:
            self._queue.put_nowait(_Copy(primary, shadow, texts, probabilities, labels))
        except queue.Full:
            self._metrics.dropped.inc()

    def _work(self) -> None:
        """The shadow's thread: score what waits, in one call per shadow version."""
        run_without_wakeup_preemption()
        while not self._closing:
            first = self._queue.get()
            if first is None:
                return
            self._score_waiting(first)  # holds no version once it returns (unloads wait)

    def _score_waiting(self, first: _Copy) -> None:
        copies = [first]
        texts = len(first.texts)
        while texts < self._max_batch_texts:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self._closing = True
                break
            copies.append(more)
            texts += len(more.texts)
        for shadow in {id(copy.shadow): copy.shadow for copy in copies}.values():
            self._compare(shadow, [copy for copy in copies if copy.shadow is shadow])

    def _compare(self, shadow: Predictor, copies: list[_Copy]) -> None:
        texts = [text for copy in copies for text in copy.texts]
        try:
            scores = shadow.predict_scores_unobserved(texts)
        except Exception as exc:
            # The type only: an exception message may quote the input.
            logger.error("shadow version %d failed: %s", shadow.version, type(exc).__name__)
            self._metrics.failed.inc(len(copies))
            return
        shadow_probabilities = scores[:, 0].astype(np.float64)
        shadow_labels = shadow.labels_for(shadow_probabilities.tolist())
        offset = 0
        for copy in copies:
            count = len(copy.texts)
            mine = shadow_probabilities[offset : offset + count]
            theirs = np.asarray(copy.probabilities, dtype=np.float64)
            agree = sum(
                a == b
                for a, b in zip(copy.labels, shadow_labels[offset : offset + count], strict=True)
            )
            pair = (copy.primary.version_label, shadow.version_label)
            self._metrics.difference.labels(*pair).observe_many(np.abs(theirs - mine))
            if agree:
                self._metrics.texts.labels(*pair, "agree").inc(agree)
            if count - agree:
                self._metrics.texts.labels(*pair, "disagree").inc(count - agree)
            offset += count
        self._metrics.scored.inc(len(copies))
