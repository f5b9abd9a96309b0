"""Keras epochs over unit counts: batches rebuilt from counts, validation after every epoch,
and the best weights kept.

The texts are tokenized once per vocabulary into unit counts (`training.vectorize`); Keras
batches are rebuilt from those counts (the model is a mean over units, so their order does not
matter), bucketed by length so a short text never carries a long one's padding. Validation is
scored on the folded model (`folded_logits`: exact, and no Keras pass) after every epoch, and
the best weights are kept: the linear start's, when no epoch beats it.

Its own module because running the epochs is one step of the pipeline (train), apart from the
choices made on validation around it (`training.fit`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]

from training.metrics import DomainScore, accuracy_by_group
from training.model import Hyperparameters, unit_scores
from training.text import PADDING_ID
from training.vectorize import Counts

logger = logging.getLogger(__name__)

# Texts per length bucket when batching: sorted by length within a bucket of this many
# batches, so a batch's texts are of similar length and little padding is built.
BUCKET_BATCHES = 32


def folded_logits(model: Any, params: Hyperparameters, counts: sp.csr_matrix) -> np.ndarray:
    """The model's raw logits for texts' unit counts, as served: dropout off and mean pooling,
    so logit = bias + mean unit score (`model.unit_scores`). The tutorial averages its
    padding to `sequence_length` as well."""
    scores, bias = unit_scores(model)
    sums = np.asarray(counts @ scores.astype(np.float64)).ravel()
    lengths = np.asarray(counts.sum(axis=1), np.float64).ravel()
    if params.mask_padding:
        return np.asarray(bias + sums / np.maximum(lengths, 1.0))
    padding = (params.sequence_length - lengths) * float(scores[PADDING_ID])
    return np.asarray(bias + (sums + padding) / params.sequence_length)


class CountBatches(keras.utils.PyDataset):  # type: ignore[misc]
    """Keras batches (ids, label, weight) rebuilt from unit counts, reshuffled every epoch
    (seeded) and bucketed by length; masked models pad a batch to its longest text, the
    tutorial to `sequence_length` (it averages its padding)."""

    def __init__(
        self, counts: Counts, weights: np.ndarray, params: Hyperparameters, seed: int
    ) -> None:
        super().__init__()
        self._matrix = counts.matrix
        self._labels = counts.labels.astype(np.float32)
        self._weights = weights.astype(np.float32)
        self._lengths = np.asarray(counts.matrix.sum(axis=1)).ravel().astype(np.int64)
        self._batch = params.batch_size
        self._pad_to = None if params.mask_padding else params.sequence_length
        self._rng = np.random.default_rng(seed)
        self._batches: list[np.ndarray] = []
        self.on_epoch_end()

    def __len__(self) -> int:
        return len(self._batches)

    def on_epoch_end(self) -> None:
        order = self._rng.permutation(len(self._labels))
        bucket = self._batch * BUCKET_BATCHES
        batches = []
        for begin in range(0, len(order), bucket):
            part = order[begin : begin + bucket]
            part = part[np.argsort(self._lengths[part], kind="stable")]
            batches += [part[i : i + self._batch] for i in range(0, len(part), self._batch)]
        self._batches = [batches[i] for i in self._rng.permutation(len(batches))]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self._batches[index]
        part = self._matrix[rows]
        repeats = part.data.astype(np.int64)
        ids = np.repeat(part.indices.astype(np.int64), repeats)
        lengths = self._lengths[rows]
        text = np.repeat(np.arange(len(rows)), lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        width = self._pad_to or max(int(lengths.max(initial=0)), 1)
        batch = np.full((len(rows), width), PADDING_ID, np.int64)
        batch[text, np.arange(len(ids)) - starts[text]] = ids
        return batch, self._labels[rows], self._weights[rows]


def validation_figures(model: Any, params: Hyperparameters, validation: Counts) -> dict[str, float]:
    """Validation loss, accuracy and mean per-domain accuracy of the model as it is."""
    logits = folded_logits(model, params, validation.matrix)
    labels = validation.labels
    right = (logits >= 0) == (labels == 1)
    loss = float(np.mean(np.logaddexp(0.0, logits) - labels * logits))
    score = DomainScore.of(accuracy_by_group(right, validation.domains))
    return {
        "val_loss": loss,
        "val_accuracy": float(right.mean()),
        "val_domain_accuracy": score.mean,
    }


class KeepBest(keras.callbacks.Callback):  # type: ignore[misc]
    """Scores validation after every epoch (the folded model: exact, and no Keras pass), keeps
    the best weights (the start's at epoch 0 when there is one) and stops after `patience`
    epochs without improvement."""

    def __init__(
        self,
        evaluate: Callable[[Any], dict[str, float]],
        monitor: str,
        patience: int | None,
        start: dict[str, float] | None,
    ) -> None:
        super().__init__()
        self._evaluate = evaluate
        self.monitor = monitor
        self._sign = -1.0 if monitor.endswith("loss") else 1.0
        self._patience = patience
        self.best = -math.inf if start is None else self._sign * start[monitor]
        self.best_epoch = 0
        self.best_weights: list[np.ndarray] | None = None
        self._has_start = start is not None
        self._wait = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._has_start:
            self.best_weights = self.model.get_weights()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        figures = self._evaluate(self.model)
        if logs is not None:
            logs.update(figures)
        value = self._sign * figures[self.monitor]
        if value > self.best:
            self.best, self.best_epoch, self._wait = value, epoch + 1, 0
            self.best_weights = self.model.get_weights()
            return
        self._wait += 1
        if self._patience is not None and self._wait >= self._patience:
            self.model.stop_training = True


@dataclasses.dataclass(frozen=True)
class TrainingRecord:
    """What training did: epochs run, and which weights were kept (the card reports both)."""

    epochs_run: int
    # Epochs of training the kept weights hold: 0 when the start was kept (training never beat
    # it on validation), else the best epoch's number. A refit trains exactly this many.
    epochs_kept: int
    history: Any

    @property
    def weights_kept(self) -> str:
        if self.epochs_kept == 0:
            return "the linear start (no epoch beat it on validation)"
        return f"after epoch {self.epochs_kept} of {self.epochs_run}"


def train(
    model: Any,
    params: Hyperparameters,
    batches: CountBatches,
    validation: Counts,
    verbose: int,
) -> TrainingRecord:
    """Fit `model` and keep its best weights on validation (the start's when none beat it).

    A linear start is already a strong model: it is kept unless an epoch beats it on the mean
    per-domain validation accuracy, and training stops once `patience` epochs have not. Not on
    loss: the start's scale is a one-feature fit that training improves at once, so a lower
    loss came with worse decisions. Without a start (the tutorial) it is validation loss.
    """
    has_start = params.embedding_init != "uniform"

    def evaluate(current: Any) -> dict[str, float]:
        return validation_figures(current, params, validation)

    monitor = "val_domain_accuracy" if has_start else "val_loss"
    keep = KeepBest(
        evaluate, monitor, params.early_stopping_patience, evaluate(model) if has_start else None
    )
    history = model.fit(batches, epochs=params.epochs, callbacks=[keep], verbose=verbose)
    epochs_run = len(history.history["loss"])
    fixed = params.early_stopping_patience is None
    if fixed and not (has_start and keep.best_epoch == 0):
        return TrainingRecord(epochs_run, epochs_run, history)
    if keep.best_weights is not None:
        model.set_weights(keep.best_weights)
    if has_start and keep.best_epoch == 0:
        logger.info("Training did not beat the start on validation: the start is kept")
    return TrainingRecord(epochs_run, keep.best_epoch, history)
