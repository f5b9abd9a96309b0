"""Where training starts: every vocabulary unit's score from a linear model of the training split.

A mean-pooled bag of units trained from random vectors overfits IMDB's training reviews (their
actors, their plots) long before it matches a regularized linear model on held-out movies. So
the embedding starts where the best simple models end, and training refines it:

* `naive_bayes_start`: each unit's naive-Bayes log-count ratio (Wang & Manning 2012);
* `nbsvm_start`: each unit's weight in NBSVM (logistic regression on unit counts scaled by those
  ratios), with its regularization strength picked on the validation split.

With tied negations the linear model has the same structure as `NegationTiedEmbedding`: a
negated unit's weight is minus its base unit's plus its own regularized correction, so rare
negations ("NOT_hilarious") inherit the opposite of a well-estimated word.

Either start also fits the scale (and, for naive Bayes, the bias) that turn a text's mean unit
score into a logit, so training does not spend its first epochs only growing the weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
import tensorflow as tf
from sklearn.linear_model import LogisticRegression

from training.text import PADDING_ID, UNKNOWN_ID, negation_base_ids

logger = logging.getLogger(__name__)

# The regularization strengths tried for the NBSVM start (unit counts, tied negations, no
# intercept). The grid brackets the optima chosen on validation for pairs and for triples, with
# a step on each side (docs/model.md, "Tried and rejected"); the baselines' NBSVM, on other
# features, has its own grid (`training.baselines`).
NBSVM_START_C_GRID = (0.02, 0.03, 0.05, 0.1, 0.3)
# The short training texts' weight against a review's 1, tried with every C when validation
# counterfactuals are given. Counterfactuals teach negation and cost review accuracy
# (docs/model.md, version 7), so a lighter weight is taken only where it keeps validation
# counterfactual accuracy at least at the full weight's: no negation regression.
SHORT_TEXT_WEIGHTS = (1.0, 0.5, 0.25)


@dataclass(frozen=True)
class LinearStart:
    """Per-unit scores (the logit contribution of one occurrence) and the mean-pooling fit."""

    scores: np.ndarray
    scale: float
    bias: float
    description: str
    # NBSVM's regularization strength and the short texts' weight, so a refit on all training
    # reviews can reuse them.
    c: float | None = None
    short_text_weight: float = 1.0


@dataclass(frozen=True)
class StartFit:
    accuracy: float  # on the validation reviews
    negation: float  # on validation counterfactuals
    c: float
    short_text_weight: float
    weights: np.ndarray


def unit_counts(token_ids: tf.RaggedTensor, vocabulary_size: int) -> sp.csr_matrix:
    """Texts x units count matrix of ragged ids."""
    rows = token_ids.value_rowids().numpy()
    ids = token_ids.flat_values.numpy()
    counts = sp.coo_matrix(
        (np.ones(len(ids), np.float64), (rows, ids)),
        shape=(int(token_ids.nrows()), vocabulary_size),
    )
    return counts.tocsr()


def naive_bayes_ratios(
    token_ids: tf.RaggedTensor, labels: np.ndarray, vocabulary_size: int, smoothing: float = 1.0
) -> np.ndarray:
    """log(P(unit | positive) / P(unit | negative)) from document frequencies (Wang & Manning).

    Padding and the unknown unit get 0: they carry no evidence.
    """
    present = unit_counts(token_ids, vocabulary_size) > 0  # each unit once per document
    positive = np.asarray(labels) == 1
    counts_positive = np.asarray(present[positive].sum(axis=0)).ravel() + smoothing
    counts_negative = np.asarray(present[~positive].sum(axis=0)).ravel() + smoothing
    ratios = np.log(counts_positive / counts_positive.sum()) - np.log(
        counts_negative / counts_negative.sum()
    )
    ratios[[PADDING_ID, UNKNOWN_ID]] = 0.0
    return np.asarray(ratios, dtype=np.float32)


def _mean_score_fit(
    scores: np.ndarray, token_ids: tf.RaggedTensor, labels: np.ndarray, with_bias: bool = True
) -> tuple[float, float]:
    """Scale and bias of logit = scale x mean unit score + bias (one-feature regression).

    Without a bias the mean form makes exactly the decisions of a sum-form linear model fitted
    without an intercept: dividing by a text's length never changes a sign.
    """
    mean_score = tf.reduce_mean(tf.gather(scores.astype(np.float32), token_ids), axis=1).numpy()
    fitted = LogisticRegression(C=1e4, fit_intercept=with_bias).fit(
        mean_score.reshape(-1, 1), labels
    )
    return float(fitted.coef_[0, 0]), float(np.ravel(fitted.intercept_)[0]) if with_bias else 0.0


def _tie_matrix(vocabulary: list[str], vocabulary_size: int, weight: float) -> sp.csr_matrix:
    """M with effective weights = M @ weights: a tied unit's = its own - weight x its base's."""
    bases = np.asarray(negation_base_ids(vocabulary) + [-1] * (vocabulary_size - len(vocabulary)))
    tied = np.flatnonzero(bases >= 0)
    identity = sp.identity(vocabulary_size, format="csr")
    minus_base = sp.csr_matrix(
        (np.full(len(tied), -weight), (tied, bases[tied])),
        shape=(vocabulary_size, vocabulary_size),
    )
    return (identity + minus_base).tocsr()


def naive_bayes_start(
    token_ids: tf.RaggedTensor,
    labels: np.ndarray,
    vocabulary: list[str],
    vocabulary_size: int,
    negation_tie: float,
) -> LinearStart:
    ratios = naive_bayes_ratios(token_ids, labels, vocabulary_size)
    if negation_tie:  # the prior: a negated unit starts as the opposite of its base
        tie = _tie_matrix(vocabulary, vocabulary_size, negation_tie)
        # Every tied unit's own part at zero (its correction starts at nothing): a tied unit's
        # row of the tie matrix holds its base as well as itself.
        untied = ratios.copy()
        untied[np.diff(tie.indptr) > 1] = 0.0
        ratios = np.asarray(tie @ untied)
    scale, bias = _mean_score_fit(ratios, token_ids, labels)
    return LinearStart(ratios, scale, bias, "naive-Bayes log-count ratios")


def nbsvm_start(
    token_ids: tf.RaggedTensor,
    labels: np.ndarray,
    validation: tuple[tf.RaggedTensor, np.ndarray] | None,
    vocabulary: list[str],
    vocabulary_size: int,
    negation_tie: float,
    review_ids: tf.RaggedTensor,
    review_labels: np.ndarray,
    c_grid: tuple[float, ...] = NBSVM_START_C_GRID,
    short_text_weights: tuple[float, ...] = (1.0,),
    negation_check: tuple[tf.RaggedTensor, np.ndarray] | None = None,
) -> LinearStart:
    """NBSVM on unit counts, tied like the embedding; C (and the short texts' weight) picked on
    the validation split.

    The ratios come from the training reviews only (`review_ids`, also the first rows of
    `token_ids`); the regression also sees the short training texts (snippets and
    counterfactuals) after them, weighted by each of `short_text_weights`. With one C and one
    weight (a refit with the ones chosen before) `validation` may be None. The choice is the
    best validation accuracy among the fits whose accuracy on `negation_check` (validation
    counterfactuals) is at least that of the best fit at the first weight: a lighter weight buys
    review accuracy only if negation does not pay for it.

    It has no intercept: the model averages where the regression sums, and an intercept c would
    have to become c/n, which a mean cannot express. A bias fitted afterwards in the mean form
    instead moved decisions on long reviews and lost validation accuracy.
    """
    ratios = naive_bayes_ratios(review_ids, review_labels, vocabulary_size).astype(np.float64)
    tie = (
        _tie_matrix(vocabulary, vocabulary_size, negation_tie)
        if negation_tie
        else sp.identity(vocabulary_size, format="csr")
    )
    scaled = tie @ sp.diags(ratios)  # effective weights = tie @ (ratios * w)

    def features_of(ids: tf.RaggedTensor) -> sp.csr_matrix:
        return (unit_counts(ids, vocabulary_size) @ scaled).tocsr()

    features = features_of(token_ids)
    if validation is None and len(c_grid) * len(short_text_weights) != 1:
        raise ValueError("choosing among several settings needs a validation split")
    validation_features = None if validation is None else features_of(validation[0])
    negation_features = None if negation_check is None else features_of(negation_check[0])
    fits: list[StartFit] = []
    for short_text_weight in short_text_weights:
        sample_weight = np.ones(len(labels))
        sample_weight[len(review_labels) :] = short_text_weight
        for c in c_grid:
            fitted = LogisticRegression(C=c, max_iter=2000, fit_intercept=False)
            fitted.fit(features, labels, sample_weight=sample_weight)
            accuracy = negation = 0.0
            if validation is not None:
                accuracy = float(np.mean(fitted.predict(validation_features) == validation[1]))
                if negation_check is not None:
                    negated = fitted.predict(negation_features)
                    negation = float(np.mean(negated == negation_check[1]))
                logger.info(
                    "NBSVM start, C=%g, short texts x%g: validation accuracy %.4f, "
                    "validation counterfactuals %.4f",
                    c,
                    short_text_weight,
                    accuracy,
                    negation,
                )
            fits.append(StartFit(accuracy, negation, c, short_text_weight, fitted.coef_[0]))
    chosen = choose_start_fit(fits, short_text_weights[0])
    scores = np.asarray(scaled @ chosen.weights)
    scale, bias = _mean_score_fit(scores, token_ids, labels, with_bias=False)
    picked = "picked on validation" if len(fits) > 1 else "chosen before"
    return LinearStart(
        scores,
        scale,
        bias,
        f"NBSVM weights (C={chosen.c:g}, short texts x{chosen.short_text_weight:g}, {picked})",
        chosen.c,
        chosen.short_text_weight,
    )


def choose_start_fit(fits: list[StartFit], reference_weight: float) -> StartFit:
    """The best validation accuracy that keeps the reference weight's negation accuracy.

    The reference is the best fit at `reference_weight`; ties go to the earlier fit (heavier
    short texts, then smaller C).
    """
    reference = max(
        (fit for fit in fits if fit.short_text_weight == reference_weight),
        key=lambda fit: fit.accuracy,
    )
    allowed = [fit for fit in fits if fit.negation >= reference.negation]
    return max(allowed, key=lambda fit: fit.accuracy)


def clear_cut(
    start: LinearStart, token_ids: tf.RaggedTensor, labels: np.ndarray, confidence: float
) -> np.ndarray:
    """Which texts the start already scores as their label with `confidence`."""
    mean_score = tf.reduce_mean(tf.gather(start.scores.astype(np.float32), token_ids), axis=1)
    logits = start.scale * mean_score.numpy() + start.bias
    probability = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
    agreement = np.where(np.asarray(labels) == 1, probability, 1.0 - probability)
    return np.asarray(agreement >= confidence)
