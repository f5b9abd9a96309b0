"""The scoring core: one object per app that every protocol adapter calls.

It takes texts and a version choice and returns probabilities, logits and labels, and the
predictor that produced them (or explanations, on request). It owns what every protocol must
agree on, so no adapter repeats it:

* readiness: a loaded version, and not draining (``check_ready``);
* which version answers: ``resolve`` turns a ``VersionChoice`` (and, for the canary split, the
  request id) into a predictor once, at the start of a request, and that predictor scores the
  whole request (a version loaded or unloaded meanwhile changes the next requests, never half
  of this one); the version policy, labels and canary split live in the registry;
* shadow scoring: a share of scored requests copied to the shadow version (``app.core.shadow``);
* the limits: texts per request, characters per text, unscorable texts (``app.core.texts``);
* the micro-batcher (429 when its queue is full) and the explain thread;
* the label rule (``Predictor.labels_for``: the card's decision threshold) and the count of
  predicted labels in the metrics, for explanations too;
* the API key check (``auth``), so REST and gRPC check the same key the same way.

Everything here runs on the event loop and never blocks it: TensorFlow runs on the batcher's
thread, the explainer's thread, or (loading) a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.auth import ApiKeyCheck
from app.core.batcher import MicroBatcher
from app.core.errors import InvalidInputError, NotReadyError, PayloadTooLargeError
from app.core.explainer import Explainer
from app.core.input_metrics import InputMetrics
from app.core.predictor import Label, Predictor, Probabilities
from app.core.registry import (
    DEFAULT_VERSION,
    ModelRegistry,
    VersionChoice,
    VersionStatus,
)
from app.core.shadow import ShadowMetrics, ShadowScorer
from app.core.texts import unscorable_reason
from app.metrics import ServiceMetrics
from app.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Scores:
    """One request's scores, in input order, and the version that produced all of them."""

    probabilities: list[float]
    logits: list[float]
    labels: list[Label]
    predictor: Predictor


@dataclass(slots=True)
class Explanations:
    """One explanation per text (the native API's JSON objects) and the version behind them."""

    explanations: list[dict[str, Any]]
    predictor: Predictor


def _score_batch(predictor: Predictor, texts: list[str]) -> Probabilities:
    """The batcher's score function (model thread): one call, (probability, logit) rows."""
    return predictor.predict_scores(texts)


class ScoringCore:
    """Scores texts for every protocol of one app; built by ``create_app``, never global."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.model_name = settings.model_name
        self.auth = ApiKeyCheck(settings.api_key.get_secret_value() if settings.api_key else None)
        self._metrics = metrics
        self.registry = ModelRegistry(
            settings,
            metrics,
            # Drift and input metrics from each batch's score outputs (versions with ``score``).
            loader=functools.partial(
                Predictor.load,
                observe_inputs=InputMetrics(metrics.registry, metrics.deferred).observer,
            ),
        )
        # Registered with or without a shadow, so the metrics an operator sees never depend
        # on the settings (and dashboards show 0 rather than nothing).
        shadow_metrics = ShadowMetrics(metrics.registry)
        self.shadow: ShadowScorer | None = None
        if settings.shadow_target is not None and settings.shadow_percent > 0:
            label, version = settings.shadow_target
            self.shadow = ShadowScorer(
                self.registry,
                VersionChoice(version, label),
                settings.shadow_percent,
                shadow_metrics,
                max_batch_texts=settings.max_batch_size,
            )
        self.batcher: MicroBatcher[Predictor] = MicroBatcher(
            _score_batch,
            max_batch_size=settings.max_batch_size,
            max_wait_seconds=settings.max_batch_wait_ms / 1000,
            gather_seconds=settings.batch_gather_ms / 1000,
            queue_size=settings.queue_size,
            on_batch=metrics.observe_batch,
        )
        metrics.track_queue_depth(lambda: self.batcher.depth)
        self.explainer = Explainer()
        self._draining = False

    # Life -------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(
        self, on_model_change: Callable[[], None] | None = None
    ) -> AsyncIterator[None]:
        """Load, verify and warm the versions of the policy, serve, and on exit drain and close.

        ConfigurationError when the settings can't be served as given (``registry.start``).
        ``on_model_change`` runs on the event loop after the first load, after every change of
        the versions served, and once a version that left them has been released. On exit,
        queued requests are answered (within ``graceful_shutdown_seconds``) before the
        batcher's, the shadow's and the explainer's threads stop.
        """
        self._metrics.forget_dead_processes()
        await asyncio.to_thread(self.registry.start)
        if on_model_change is not None:
            self.registry.on_unloaded = _on_loop(asyncio.get_running_loop(), on_model_change)
            on_model_change()
        self.batcher.start()
        if self.shadow is not None:
            self.shadow.start()
        watcher: asyncio.Task[None] | None = None
        if self.settings.reload_interval_seconds > 0:
            watcher = asyncio.create_task(
                self.registry.watch(self.settings.reload_interval_seconds, on_model_change),
                name="model-watcher",
            )
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await self.batcher.drain(timeout_seconds=self.settings.graceful_shutdown_seconds)
            if self.shadow is not None:
                await asyncio.to_thread(self.shadow.close)
            await self.explainer.close()
            self.registry.on_unloaded = None

    def start_draining(self) -> None:
        """The process is stopping: readiness turns false at once, while requests already
        received (and any that still arrive) are scored until the server stops."""
        self._draining = True

    @property
    def draining(self) -> bool:
        """Whether ``start_draining`` was called."""
        return self._draining

    def check_ready(self) -> Predictor:
        """The default version, or NotReadyError while loading or draining (readiness probes)."""
        if self._draining:
            raise NotReadyError("The service is shutting down.")
        return self.registry.resolve()

    # Requests ---------------------------------------------------------------------------------

    def resolve(
        self,
        choice: VersionChoice = DEFAULT_VERSION,
        model: str | None = None,
        request_id: str | None = None,
    ) -> Predictor:
        """The predictor that answers ``choice`` (of ``model``, if the request names one).

        An unversioned choice goes to the ``stable`` label, or for the canary's share of
        requests to ``canary``: pass the client's request id (REST ``X-Request-ID``, gRPC
        ``x-request-id`` metadata) to make that choice sticky, when ``reads_request_id``.
        NotReadyError while nothing is loaded; a ``ModelNotFoundError`` refinement
        (``UnknownModelError``, ``UnknownVersionError``, ``UnknownLabelError``) for a name,
        version or label that is not served, which each protocol words in its own way.
        """
        return self.registry.resolve(choice, model, request_id)

    @property
    def reads_request_id(self) -> bool:
        """Whether ``resolve`` uses the request id (a canary split is on): protocols read the
        id only then, so the default path does no work for it."""
        return self.registry.reads_request_id

    def served(self) -> list[Predictor]:
        """The versions serving now, highest first (status and metadata routes)."""
        return list(self.registry.serving.versions.values())

    def statuses(self) -> list[VersionStatus]:
        """Every version the service knows, highest first, with its state (loading, available,
        unloading, or refused with the reason): TF Serving's model status."""
        return self.registry.statuses()

    def check_count(self, count: int) -> None:
        """PayloadTooLargeError when one request carries more texts than ``max_batch_items``."""
        limit = self.settings.max_batch_items
        if count > limit:
            raise PayloadTooLargeError(f"At most {limit} texts per request.")

    def check_texts(self, texts: Sequence[str]) -> None:
        """InvalidInputError for a text over ``max_text_chars`` or unscorable, before it joins
        a micro-batch (blank texts are refused by each protocol's parsing, as its schema says)."""
        max_chars = self.settings.max_text_chars
        for text in texts:
            if len(text) > max_chars:
                raise InvalidInputError(f"A text is longer than {max_chars} characters.")
            reason = unscorable_reason(text)
            if reason is not None:
                raise InvalidInputError(reason)

    async def score(
        self, texts: Sequence[str], version: VersionChoice | Predictor = DEFAULT_VERSION
    ) -> Scores:
        """Score ``texts`` with the version chosen (or already resolved) for this request.

        Checked in this order: the number of texts, the version (unless resolved), the texts.
        """
        self.check_count(len(texts))
        predictor = version if isinstance(version, Predictor) else self.registry.resolve(version)
        self.check_texts(texts)
        scored = await self.batcher.submit(predictor, texts)
        labels = predictor.labels_for(scored.probabilities)
        self._count(labels, predictor)
        shadow = self.shadow
        if shadow is not None:
            shadow.offer(predictor, texts, scored.probabilities, labels)
        return Scores(scored.probabilities, scored.logits, labels, predictor)

    async def explain(
        self, texts: Sequence[str], version: VersionChoice | Predictor = DEFAULT_VERSION
    ) -> Explanations:
        """Explain ``texts`` (at most ``max_explain_items``) with the chosen version.

        ExplainUnavailableError (501) for a version exported without the explain signature.
        Explained texts count as predictions; they are not input-metrics traffic.
        """
        limit = self.settings.max_explain_items
        if len(texts) > limit:
            raise PayloadTooLargeError(f"At most {limit} texts per explain request.")
        predictor = version if isinstance(version, Predictor) else self.registry.resolve(version)
        self.check_texts(texts)
        explanations = await self.explainer.explain(predictor, texts)
        self._count([explanation["label"] for explanation in explanations], predictor)
        return Explanations(explanations, predictor)

    async def signature_defs(self, predictor: Predictor) -> dict[str, Any]:
        """The version's signature_defs in TF Serving's JSON (read in a thread the first time)."""
        found = predictor.signature_defs
        if found is None:
            try:
                found = await asyncio.to_thread(predictor.read_signature_defs)
            except Exception as exc:  # the directory went away or is unreadable
                raise NotReadyError("The model's signatures are not readable right now.") from exc
        return found

    def _count(self, labels: list[Label], predictor: Predictor) -> None:
        positives = labels.count("positive")
        self._metrics.count_predictions(positives, len(labels) - positives, predictor.version_label)


def _on_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], None]
) -> Callable[[int], None]:
    """``callback`` scheduled on ``loop`` from any thread (a no-op once the loop is closed)."""

    def schedule(version: int) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback)

    return schedule
