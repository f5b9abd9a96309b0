"""Vectorize, weigh, start and train: the model fitted on the training split with every setting
chosen on validation, then (`refit`) the same settings fitted again on training + validation.

Every choice on a mix of corpora is made by the mean of the per-domain validation accuracies
(ties: the better worst domain; `training.metrics`): the NBSVM start's regularization, the mix's
weight multipliers where the mix lists several, and whether training after the start is kept.

The texts are tokenized once per vocabulary into unit counts (`training.vectorize`); Keras
batches are rebuilt from those counts (the model is a mean over units, so their order does not
matter), bucketed by length so a short text never carries a long one's padding.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

import keras
import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]

from training import augment
from training.data import CALIBRATION_SNIPPET, ROW, SNIPPET, RunData, RunRow
from training.metrics import DomainScore, accuracy_by_group
from training.mixing import Mix, row_weights
from training.model import Hyperparameters, build_model, tie_base_ids, unit_scores
from training.start import (
    NBSVM_START_C_GRID,
    LinearStart,
    NBSVMDesign,
    naive_bayes_start,
    nbsvm_start,
)
from training.text import PADDING_ID
from training.vectorize import Counts, adapt_vectorizer, count_units

logger = logging.getLogger(__name__)

FIT, VALIDATION, CALIBRATION, TEST = "fit", "validation", "calibration", "test"
TRAINING_KINDS = (ROW, SNIPPET)
# Texts per length bucket when batching: sorted by length within a bucket of this many
# batches, so a batch's texts are of similar length and little padding is built.
BUCKET_BATCHES = 32
SELECTION_RULE = "the mean of the per-domain validation accuracies (ties: the better worst domain)"


# --- vectorize and weigh ------------------------------------------------------------------


def vectorized(
    params: Hyperparameters, data: RunData, training_splits: Collection[str]
) -> tuple[Any, dict[str, Counts]]:
    """A vocabulary from the training rows and snippets of `training_splits`, and the unit
    counts of the training texts (FIT), and of validation (VALIDATION, CALIBRATION: its
    calibration snippets) and test rows (TEST) outside them, in one pass."""
    vectorizer = adapt_vectorizer(
        params, (row.text for row in data.rows(training_splits, TRAINING_KINDS))
    )

    def group_of(row: RunRow) -> str | None:
        if row.split in training_splits:
            return FIT if row.kind in TRAINING_KINDS else None
        if row.kind == CALIBRATION_SNIPPET:
            return CALIBRATION
        return {"validation": VALIDATION, "test": TEST}[row.split] if row.kind == ROW else None

    splits = ("train", "validation", "test")
    kinds = (ROW, SNIPPET, CALIBRATION_SNIPPET)
    groups = count_units(vectorizer, params, data.rows(splits, kinds), group_of)
    for name, counts in groups.items():
        logger.info("Unit counts %s: %d texts, %d units", name, len(counts), counts.matrix.nnz)
    return vectorizer, groups


def sample_weights(counts: Counts, multipliers: dict[str, float]) -> np.ndarray:
    """Each training text's weight: the mix's (`mixing.row_weights`) for a corpus's rows; a
    snippet or counterfactual weighs what a row of the long-review corpora does on average."""
    rows = counts.kinds == ROW
    pairs = list(
        zip(counts.corpora[rows].tolist(), counts.labels[rows].astype(int).tolist(), strict=True)
    )
    table = row_weights(Counter(pairs), multipliers)
    weights = np.ones(len(counts))
    weights[rows] = [table[pair] for pair in pairs]
    short = ~rows
    if short.any():
        long_reviews = rows & np.isin(counts.corpora, np.unique(counts.corpora[short]))
        weights[short] = weights[long_reviews].mean() if long_reviews.any() else 1.0
    return weights


# --- start ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Trial:
    """One setting tried on validation: the mix's weight multipliers and NBSVM's C."""

    multipliers: dict[str, float]
    c: float | None
    validation: dict[str, float]  # accuracy per domain

    @property
    def score(self) -> DomainScore:
        return DomainScore.of(self.validation)

    def to_dict(self, varied: Collection[str]) -> dict[str, Any]:
        return {
            "weights": {name: w for name, w in self.multipliers.items() if name in varied},
            "C": self.c,
            "validation_accuracy": {d: round(a, 4) for d, a in self.validation.items()},
            "mean": round(self.score.mean, 4),
            "worst": round(self.score.worst, 4),
        }


@dataclasses.dataclass(frozen=True)
class Selection:
    """What was tried on validation and what was chosen (the card's "selection")."""

    trials: list[Trial]
    chosen: int
    varied: tuple[str, ...]  # corpora whose weight multiplier was chosen among several

    @property
    def best(self) -> Trial:
        return self.trials[self.chosen]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": SELECTION_RULE,
            "tried": [trial.to_dict(self.varied) for trial in self.trials],
            "chosen": self.best.to_dict(self.varied),
        }


def _domain_accuracies(scores: np.ndarray, validation: Counts) -> dict[str, float]:
    right = ((validation.matrix @ scores) >= 0) == (validation.labels == 1)
    return accuracy_by_group(np.asarray(right).ravel(), validation.domains)


def choose_start(
    params: Hyperparameters,
    vocabulary: list[str],
    fit: Counts,
    validation: Counts,
    candidates: list[dict[str, float]],
    c_grid: tuple[float, ...] = NBSVM_START_C_GRID,
) -> tuple[LinearStart | None, np.ndarray, Selection]:
    """The start, the training weights, and the choice: every mix weighting x every C for an
    NBSVM start, judged by the per-domain validation accuracies; other starts take the
    mix's first weighting (their scores are fixed by the ratios)."""
    bases = tie_base_ids(vocabulary, params.negation_tie_units) if params.negation_tie else []
    rows = fit.kinds == ROW
    varied = tuple(name for name in candidates[0] if len({c[name] for c in candidates}) > 1)
    if params.embedding_init != "nbsvm":
        weights = sample_weights(fit, candidates[0])
        start = None
        if params.embedding_init == "naive_bayes":
            start = naive_bayes_start(
                fit.matrix, fit.labels, weights, rows, bases, params.negation_tie
            )
        validation_scores = np.zeros(fit.matrix.shape[1]) if start is None else start.scores
        trial = Trial(candidates[0], None, _domain_accuracies(validation_scores, validation))
        return start, weights, Selection([trial], 0, varied)
    trials: list[Trial] = []
    best: tuple[tuple[float, float], np.ndarray, np.ndarray] | None = None
    for multipliers in candidates:
        weights = sample_weights(fit, multipliers)
        design = NBSVMDesign.of(fit.matrix, fit.labels, weights, rows, bases, params.negation_tie)
        features = design.features(fit.matrix)
        for c in c_grid:
            scores = design.fit(features, fit.labels, weights, c)
            trial = Trial(multipliers, c, _domain_accuracies(scores, validation))
            trials.append(trial)
            logger.info(
                "NBSVM start, weights %s, C=%g: validation mean %.4f, worst %.4f (%s)",
                {k: multipliers[k] for k in varied},
                c,
                trial.score.mean,
                trial.score.worst,
                ", ".join(f"{d} {a:.4f}" for d, a in trial.validation.items()),
            )
            if best is None or trial.score.key() > best[0]:
                best = (trial.score.key(), scores, weights)
        del features
    assert best is not None
    chosen = max(range(len(trials)), key=lambda i: (trials[i].score.key(), -i))
    _, scores, weights = best
    picked = trials[chosen]
    start = nbsvm_start(
        scores,
        fit.matrix,
        fit.labels,
        weights,
        f"NBSVM weights (C={picked.c:g}, picked on validation)",
        float(picked.c or 0.0),
    )
    return start, weights, Selection(trials, chosen, varied)


def refit_start(
    params: Hyperparameters,
    vocabulary: list[str],
    fit: Counts,
    weights: np.ndarray,
    c: float | None,
) -> LinearStart | None:
    """The start at settings chosen before, fitted on (more) training rows."""
    if params.embedding_init == "uniform":
        return None
    bases = tie_base_ids(vocabulary, params.negation_tie_units) if params.negation_tie else []
    rows = fit.kinds == ROW
    if params.embedding_init == "naive_bayes" or c is None:
        return naive_bayes_start(fit.matrix, fit.labels, weights, rows, bases, params.negation_tie)
    design = NBSVMDesign.of(fit.matrix, fit.labels, weights, rows, bases, params.negation_tie)
    scores = design.fit(design.features(fit.matrix), fit.labels, weights, c)
    return nbsvm_start(
        scores, fit.matrix, fit.labels, weights, f"NBSVM weights (C={c:g}, chosen before)", c
    )


# --- train ----------------------------------------------------------------------------------


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


# --- fit, choosing on validation; refit --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Fitted:
    """A vectorizer and model fitted on some rows, and what was chosen on validation."""

    vectorizer: Any
    model: Any
    start: LinearStart | None
    training: TrainingRecord
    selection: Selection
    counts: dict[str, Counts]  # the unit counts of its vocabulary: validation, test, ...


def _with_counterfactuals(
    params: Hyperparameters,
    vectorizer: Any,
    data: RunData,
    training_splits: Collection[str],
    fit: Counts,
    weights: np.ndarray,
) -> tuple[Counts, np.ndarray]:
    """The training counts with the snippets' counterfactuals (if enabled) added."""
    if not params.counterfactuals:
        return fit, weights
    rows = fit.kinds == ROW
    start = naive_bayes_start(fit.matrix, fit.labels, weights, rows, [], 0.0)
    snippets = (r for r in data.rows(training_splits, (SNIPPET,)))
    negated = augment.counterfactual_counts(
        vectorizer, params, start, fit.select(fit.kinds == SNIPPET), snippets
    )
    snippet_weight = weights[fit.kinds == SNIPPET].mean() if (fit.kinds == SNIPPET).any() else 1.0
    logger.info("Added %d counterfactual snippets", len(negated))
    return Counts.stack([fit, negated]), np.concatenate(
        [weights, np.full(len(negated), snippet_weight)]
    )


def fit_choosing_on_validation(
    params: Hyperparameters, data: RunData, mix: Mix, verbose: int
) -> Fitted:
    """Vocabulary, weights, start and training on the training split; the mix weighting, C and
    epochs chosen on validation."""
    vectorizer, counts = vectorized(params, data, {"train"})
    fit, validation = counts[FIT], counts[VALIDATION]
    vocabulary = vectorizer.get_vocabulary()
    start, weights, selection = choose_start(params, vocabulary, fit, validation, mix.candidates())
    fit, weights = _with_counterfactuals(params, vectorizer, data, {"train"}, fit, weights)
    model = build_model(params, vocabulary, start)
    record = train(
        model, params, CountBatches(fit, weights, params, params.seed), validation, verbose
    )
    if start is not None:
        logger.info(
            "Start: %s; logit = %.2f x mean score %+.2f", start.description, start.scale, start.bias
        )
    del counts[FIT]
    return Fitted(vectorizer, model, start, record, selection, counts)


def refit(params: Hyperparameters, data: RunData, chosen: Fitted, verbose: int) -> Fitted:
    """The settings chosen on validation, fitted again on training + validation rows.

    Once validation has chosen the weighting, C and the epochs, holding its rows out only costs
    data. The vocabulary and the ratios are rebuilt from all of them; the calibration stays the
    one fitted on the held-out model's validation logits.
    """
    splits = {"train", "validation"}
    vectorizer, counts = vectorized(params, data, splits)
    fit = counts.pop(FIT)
    weights = sample_weights(fit, chosen.selection.best.multipliers)
    vocabulary = vectorizer.get_vocabulary()
    start = refit_start(params, vocabulary, fit, weights, chosen.selection.best.c)
    fit, weights = _with_counterfactuals(params, vectorizer, data, splits, fit, weights)
    model = build_model(params, vocabulary, start)
    epochs = chosen.training.epochs_kept
    if epochs:
        model.fit(CountBatches(fit, weights, params, params.seed), epochs=epochs, verbose=verbose)
    logger.info("Refit on %d training texts (%d epochs)", len(fit), epochs)
    return Fitted(vectorizer, model, start, chosen.training, chosen.selection, counts)
