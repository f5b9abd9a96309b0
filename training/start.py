"""Where training starts: every vocabulary unit's score from a linear model of the training rows.

A mean-pooled bag of units trained from random vectors overfits its training reviews (their
actors, their plots) long before it matches a regularized linear model on held-out texts. So
the embedding starts where the best simple models end, and training refines it:

* `naive_bayes_start`: each unit's naive-Bayes log-count ratio (Wang & Manning 2012);
* `nbsvm_fit`: each unit's weight in NBSVM (logistic regression on unit counts scaled by those
  ratios) at one regularization strength; `training.fit` picks it, and the mix's weights, on
  validation.

Both read the training rows' unit counts (`training.vectorize.Counts`) and per-row sample
weights (the mix's: every corpus the same total, labels balanced). The ratios come from the
corpora's rows only; the regression also sees the snippets.

With tied negations the linear model has the same structure as `NegationTiedEmbedding`: a
tied unit's weight is minus its base unit's plus its own regularized correction, so rare
negations ("NOT_hilarious") inherit the opposite of a well-estimated unit.

Either start also fits the scale (and, for naive Bayes, the bias) that turn a text's mean unit
score into a logit, so training does not spend its first epochs only growing the weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression

from training.text import PADDING_ID, UNKNOWN_ID

logger = logging.getLogger(__name__)

# The regularization strengths tried for the NBSVM start (unit counts, tied negations, no
# intercept), chosen by the mean per-domain validation accuracy: on the mix the optimum sat in
# the middle of this grid; the baselines' NBSVM, on other features, has its own grid
# (`training.baselines`).
NBSVM_START_C_GRID = (0.1, 0.3, 1.0)
# The ratios' smoothing (Wang & Manning's alpha).
NB_SMOOTHING = 1.0


@dataclass(frozen=True)
class LinearStart:
    """Per-unit scores (the logit contribution of one occurrence) and the mean-pooling fit."""

    scores: np.ndarray
    scale: float
    bias: float
    description: str
    # NBSVM's regularization strength, so a refit on all training rows can reuse it.
    c: float | None = None


def naive_bayes_ratios(
    counts: sp.csr_matrix, labels: np.ndarray, weights: np.ndarray, smoothing: float = NB_SMOOTHING
) -> np.ndarray:
    """log(P(unit | positive) / P(unit | negative)) from (weighted) document frequencies.

    Padding and the unknown unit get 0: they carry no evidence.
    """
    present = counts.copy()
    present.data[:] = 1.0  # each unit once per text
    positive = np.asarray(labels) == 1
    w = np.asarray(weights, np.float64)
    counts_positive = np.asarray(present[positive].T @ w[positive]).ravel() + smoothing
    counts_negative = np.asarray(present[~positive].T @ w[~positive]).ravel() + smoothing
    ratios = np.log(counts_positive / counts_positive.sum()) - np.log(
        counts_negative / counts_negative.sum()
    )
    ratios[[PADDING_ID, UNKNOWN_ID]] = 0.0
    return np.asarray(ratios, dtype=np.float64)


def tie_matrix(bases: list[int], size: int, weight: float) -> sp.csr_matrix:
    """M with effective weights = M @ weights: a tied unit's = its own - weight x its base's.

    `bases`: each unit's tied unit or -1 (`training.model.tie_base_ids`); 0 weight: identity.
    """
    base = np.asarray(list(bases) + [-1] * (size - len(bases)))
    tied = np.flatnonzero(base >= 0) if weight else np.zeros(0, np.int64)
    minus_base = sp.csr_matrix(
        (np.full(len(tied), -weight), (tied, base[tied])), shape=(size, size)
    )
    return (sp.identity(size, format="csr") + minus_base).tocsr()


def mean_logits(scores: np.ndarray, counts: sp.csr_matrix) -> np.ndarray:
    """Each text's mean unit score (every text has at least one unit: the tokenizer's rule)."""
    lengths = np.maximum(np.asarray(counts.sum(axis=1), np.float64).ravel(), 1.0)
    return np.asarray(counts @ scores, np.float64).ravel() / lengths


def mean_score_fit(
    scores: np.ndarray,
    counts: sp.csr_matrix,
    labels: np.ndarray,
    weights: np.ndarray,
    with_bias: bool = True,
) -> tuple[float, float]:
    """Scale and bias of logit = scale x mean unit score + bias (one-feature regression).

    Without a bias the mean form makes exactly the decisions of a sum-form linear model fitted
    without an intercept: dividing by a text's length never changes a sign.
    """
    mean_score = mean_logits(scores, counts).reshape(-1, 1)
    fitted = LogisticRegression(C=1e4, fit_intercept=with_bias).fit(
        mean_score, labels, sample_weight=weights
    )
    return float(fitted.coef_[0, 0]), float(np.ravel(fitted.intercept_)[0]) if with_bias else 0.0


def naive_bayes_start(
    counts: sp.csr_matrix,
    labels: np.ndarray,
    weights: np.ndarray,
    ratio_rows: np.ndarray,
    bases: list[int],
    negation_tie: float,
) -> LinearStart:
    """Each unit's naive-Bayes ratio (from the `ratio_rows`), tied units starting as minus
    `negation_tie` times their base (their own part, the correction, at zero)."""
    ratios = naive_bayes_ratios(counts[ratio_rows], labels[ratio_rows], weights[ratio_rows])
    if negation_tie:
        tie = tie_matrix(bases, counts.shape[1], negation_tie)
        untied = ratios.copy()
        untied[np.diff(tie.indptr) > 1] = 0.0  # a tied unit's row holds its base as well
        ratios = np.asarray(tie @ untied)
    scale, bias = mean_score_fit(ratios, counts, labels, weights)
    return LinearStart(ratios, scale, bias, "naive-Bayes log-count ratios")


@dataclass(frozen=True)
class NBSVMDesign:
    """NBSVM's features: unit counts times the tie matrix and the naive-Bayes ratios, so the
    regression's coefficients w give every unit's score as `scaled @ w`."""

    scaled: sp.csr_matrix

    @classmethod
    def of(
        cls,
        counts: sp.csr_matrix,
        labels: np.ndarray,
        weights: np.ndarray,
        ratio_rows: np.ndarray,
        bases: list[int],
        negation_tie: float,
    ) -> NBSVMDesign:
        ratios = naive_bayes_ratios(counts[ratio_rows], labels[ratio_rows], weights[ratio_rows])
        return cls((tie_matrix(bases, counts.shape[1], negation_tie) @ sp.diags(ratios)).tocsr())

    def features(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        return (counts @ self.scaled).tocsr()

    def fit(
        self, features: sp.csr_matrix, labels: np.ndarray, weights: np.ndarray, c: float
    ) -> np.ndarray:
        """Every unit's score under NBSVM at regularization strength `c`.

        No intercept: the model averages where the regression sums, and an intercept c would
        have to become c/n, which a mean cannot express.
        """
        fitted = LogisticRegression(C=c, max_iter=2000, fit_intercept=False)
        fitted.fit(features, labels, sample_weight=weights)
        return np.asarray(self.scaled @ fitted.coef_[0], np.float64)


def nbsvm_start(
    scores: np.ndarray,
    counts: sp.csr_matrix,
    labels: np.ndarray,
    weights: np.ndarray,
    description: str,
    c: float,
) -> LinearStart:
    """The start from NBSVM's unit scores: the mean form's scale fitted, no bias."""
    scale, bias = mean_score_fit(scores, counts, labels, weights, with_bias=False)
    return LinearStart(scores, scale, bias, description, c)


def clear_cut(
    start: LinearStart, counts: sp.csr_matrix, labels: np.ndarray, confidence: float
) -> np.ndarray:
    """Which texts the start already scores as their label with `confidence`."""
    logits = start.scale * mean_logits(start.scores, counts) + start.bias
    probability = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
    agreement = np.where(np.asarray(labels) == 1, probability, 1.0 - probability)
    return np.asarray(agreement >= confidence)
