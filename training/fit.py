"""Vectorize, weigh, start and train: the model fitted on the training split with every setting
chosen on validation, then (`refit`) the same settings fitted again on training + validation.

Every choice on a mix of corpora is made by the mean of the per-domain validation accuracies
(ties: the better worst domain; `training.metrics`): the NBSVM start's regularization, the mix's
weight multipliers where the mix lists several, and whether training after the start is kept.

The texts are tokenized once per vocabulary into unit counts (`training.vectorize`), which
both the start and the Keras epochs (`training.epochs`) read.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Collection
from typing import Any

import numpy as np

from training import augment
from training.data import CALIBRATION_SNIPPET, ROW, SNIPPET, RunData, RunRow
from training.epochs import CountBatches, TrainingRecord, train
from training.metrics import DomainScore, accuracy_by_group
from training.mixing import Mix, row_weights
from training.model import Hyperparameters, build_model, tie_base_ids
from training.start import (
    NBSVM_START_C_GRID,
    LinearStart,
    NBSVMDesign,
    naive_bayes_start,
    nbsvm_start,
)
from training.vectorize import Counts, adapt_vectorizer, count_units

logger = logging.getLogger(__name__)

FIT, VALIDATION, CALIBRATION, TEST = "fit", "validation", "calibration", "test"
TRAINING_KINDS = (ROW, SNIPPET)
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
