"""Drift and input metrics, observed once per model call from the ``score`` signature.

Versions exported since 3 have a ``score`` signature: ``serving_default``'s probability and
logit plus input accounting (real token count, out-of-vocabulary count, truncated) from the
same graph call, so the accounting costs the model nothing extra. The predictor scores every
batch with it when the live version has it (see ``observed_scoring``) and hands the outputs
here, on the model thread.

The model thread is the one every request waits for, so it writes nothing: it queues each
batch's arrays (``app.metrics.DeferredObservations``), and the event loop's metrics flush
bins them, many batches at once (``app.metrics.BulkHistogram.observe_many``), after the
responses are out.

Each series is labelled by version and by the protocol the texts came by (``rest`` or
``grpc``): a batch can mix both, and the batcher says how it splits
(``app.core.batcher.batch_protocols``), so a mixed batch is observed once per protocol.

Texts scored by ``/v1/explain`` are not observed: the playground explains as its user types,
and half-typed texts are not the traffic whose drift these metrics watch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter

from app.core.batcher import REQUEST_PROTOCOL, batch_protocols
from app.metrics import BulkHistogram, DeferredObservations
from contract import (
    OOV_COUNT_OUTPUT,
    PROBABILITY_OUTPUT,
    TOKEN_COUNT_OUTPUT,
    TRUNCATED_OUTPUT,
)

# Twenty equal-width buckets: histogram_quantile interpolates within a bucket, so narrow,
# even buckets give a usable median and quartiles of the score distribution.
PROBABILITY_BUCKETS = tuple(round(i / 20, 2) for i in range(1, 21))
# Real units scored (words and n-grams, at most the version's sequence length).
TOKEN_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000)
OOV_SHARE_BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


@dataclass(frozen=True, slots=True)
class InputBatch:
    """One model call's per-text outputs, as numpy arrays of equal length."""

    probability: npt.NDArray[np.float32]
    token_count: npt.NDArray[np.int64]
    oov_count: npt.NDArray[np.int64]
    truncated: npt.NDArray[np.bool_]

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any]) -> InputBatch:
        """Read the ``score`` signature's outputs (arrays or tensors, already computed: cheap)."""
        return cls(
            probability=np.asarray(outputs[PROBABILITY_OUTPUT]).reshape(-1),
            token_count=np.asarray(outputs[TOKEN_COUNT_OUTPUT]).reshape(-1),
            oov_count=np.asarray(outputs[OOV_COUNT_OUTPUT]).reshape(-1),
            truncated=np.asarray(outputs[TRUNCATED_OUTPUT]).reshape(-1),
        )

    def take(self, rows: npt.NDArray[np.intp]) -> InputBatch:
        """The texts at ``rows`` only."""
        return InputBatch(
            self.probability[rows],
            self.token_count[rows],
            self.oov_count[rows],
            self.truncated[rows],
        )

    @property
    def oov_share(self) -> npt.NDArray[np.float64]:
        """OOV units over real units; 0 for an empty text (nothing real was out of vocabulary)."""
        real = self.token_count.astype(np.float64)
        return np.divide(
            self.oov_count.astype(np.float64), real, out=np.zeros_like(real), where=real > 0
        )


InputObserver = Callable[[InputBatch], None]
ObserverFactory = Callable[[str], InputObserver]
"""Makes the observer of one version (by its label in the metrics)."""


# Every series is labelled by version and by the protocol its texts came by (``rest``/``grpc``).
_LABEL_NAMES = ("version", "protocol")


class InputMetrics:
    """Score drift and input accounting by version, registered in the app's own registry and
    written when ``deferred`` is flushed."""

    def __init__(self, registry: CollectorRegistry, deferred: DeferredObservations) -> None:
        self._deferred = deferred

        def histogram(name: str, documentation: str, buckets: Sequence[float]) -> BulkHistogram:
            return BulkHistogram(
                name, documentation, _LABEL_NAMES, buckets=buckets, registry=registry
            )

        self.probability = histogram(
            "sentiment_predicted_probability",
            "Predicted P(positive) per scored text: a shift in its distribution is score drift.",
            PROBABILITY_BUCKETS,
        )
        self.token_count = histogram(
            "sentiment_input_tokens",
            "Real units (words and n-grams) scored per text, at most the sequence length.",
            TOKEN_BUCKETS,
        )
        self.oov_share = histogram(
            "sentiment_input_oov_share",
            "Share of a text's scored units that are out of the model's vocabulary.",
            OOV_SHARE_BUCKETS,
        )
        self.truncated = Counter(
            "sentiment_input_truncated_texts",
            "Texts longer than the model's sequence length (their tail was not scored).",
            _LABEL_NAMES,
            registry=registry,
        )

    def observer(self, version: str) -> InputObserver:
        """What records the model calls of ``version`` (model thread; a handful of queued
        values per batch and protocol, for children resolved once per protocol)."""
        recorders: dict[str, InputObserver] = {}

        def recorder(protocol: str) -> InputObserver:
            record = recorders.get(protocol)
            if record is None:
                record = recorders[protocol] = self._recorder(version, protocol)
            return record

        def observe(batch: InputBatch) -> None:
            runs = batch_protocols()
            if len(runs) <= 1:  # one protocol (nearly always), or not in a batch
                recorder(runs[0][0] if runs else REQUEST_PROTOCOL.get())(batch)
                return
            rows: dict[str, list[npt.NDArray[np.intp]]] = {}
            start = 0
            for protocol, count in runs:
                rows.setdefault(protocol, []).append(np.arange(start, start + count))
                start += count
            for protocol, parts in rows.items():
                recorder(protocol)(batch.take(np.concatenate(parts)))

        return observe

    def _recorder(self, version: str, protocol: str) -> InputObserver:
        probability = self.probability.labels(version, protocol)
        token_count = self.token_count.labels(version, protocol)
        oov_share = self.oov_share.labels(version, protocol)
        truncated = self.truncated.labels(version, protocol)

        deferred = self._deferred

        def record(batch: InputBatch) -> None:
            deferred.observe(probability, batch.probability)
            deferred.observe(token_count, batch.token_count)
            deferred.observe(oov_share, batch.oov_share)
            count = int(np.count_nonzero(batch.truncated))
            if count:
                deferred.inc(truncated, count)

        return record


def observed_scoring(
    score_function: Callable[..., Mapping[str, Any]], observe: InputObserver
) -> Callable[..., Mapping[str, Any]]:
    """``score_function`` that also reports each call's accounting to ``observe``.

    Its outputs are a superset of ``serving_default``'s, so callers that read probability
    (and logit) from it are unchanged.
    """

    def score_and_observe(**inputs: Any) -> Mapping[str, Any]:
        outputs = score_function(**inputs)
        observe(InputBatch.from_outputs(outputs))
        return outputs

    return score_and_observe
