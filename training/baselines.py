"""The strongest simple alternatives, fitted in every run so each card says how the model compares.

* TF-IDF over word unigrams and bigrams + logistic regression;
* NBSVM (Wang & Manning 2012): binary unigram+bigram features scaled by their naive-Bayes
  log-count ratios, then logistic regression.

Both fit on the same training split as the model and are scored on the same test split. Their
regularization strength is picked on the validation split from a small grid, like every setting
of the model, so they are compared at their best, not at a library default. When the model is
refitted on all training reviews, so are they (vocabulary, ratios and weights, at the C chosen).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from training.data import Split

logger = logging.getLogger(__name__)

# The regularization strengths each baseline picks from on validation. Both optima sit at a
# grid's upper end but inside it: one step further lost on validation, and every extra value
# costs each training run another fit. (The model's own NBSVM start, on other features, has
# its own grid: `training.start.NBSVM_START_C_GRID`.)
TFIDF_BASELINE_C_GRID = (2.0, 8.0, 32.0)
NBSVM_BASELINE_C_GRID = (0.1, 1.0)
_TOKEN_PATTERN = r"(?u)\b\w[\w']*\b"  # keeps "don't" one word, as the model does


@dataclass(frozen=True)
class BaselineResult:
    name: str
    description: str
    c: float
    validation_accuracy: float
    test_accuracy: float
    test_roc_auc: float | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "C": self.c,
            "validation_accuracy": round(self.validation_accuracy, 4),
            "test_accuracy": round(self.test_accuracy, 4),
            "test_roc_auc": None if self.test_roc_auc is None else round(self.test_roc_auc, 4),
            "fit_seconds": round(self.seconds, 1),
        }


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((scores >= 0) == (np.asarray(labels) == 1)))


def _roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else None


# A baseline's features: fitted on some texts, they give those texts' matrix and a transform.
Featurizer = Callable[[Split], tuple[Any, Callable[[list[str]], Any]]]


def _best_on_validation(
    name: str,
    description: str,
    grid: tuple[float, ...],
    featurize: Featurizer,
    fit: Split,
    validation: Split,
    test: Split,
    refit: bool,
) -> BaselineResult:
    started = time.perf_counter()
    train_features, transform = featurize(fit)
    validation_features = transform(validation.texts)
    best: tuple[float, float, LogisticRegression] | None = None
    for c in grid:
        model = LogisticRegression(C=c, max_iter=1000).fit(train_features, fit.labels)
        accuracy = _accuracy(model.decision_function(validation_features), validation.labels)
        if best is None or accuracy > best[0]:
            best = (accuracy, c, model)
    assert best is not None
    validation_accuracy, c, model = best
    if refit:
        everything = fit + validation
        train_features, transform = featurize(everything)
        model = LogisticRegression(C=c, max_iter=1000).fit(train_features, everything.labels)
        description += " (refitted on all training reviews)"
    test_scores = model.decision_function(transform(test.texts))
    result = BaselineResult(
        name,
        description,
        c,
        validation_accuracy,
        _accuracy(test_scores, test.labels),
        _roc_auc(test_scores, test.labels),
        time.perf_counter() - started,
    )
    logger.info(
        "Baseline %s (C=%g): validation %.4f, test %.4f",
        name,
        c,
        result.validation_accuracy,
        result.test_accuracy,
    )
    return result


def _tfidf_features(train: Split) -> tuple[Any, Callable[[list[str]], Any]]:
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=_TOKEN_PATTERN
    )
    return vectorizer.fit_transform(train.texts), vectorizer.transform


def _nbsvm_features(train: Split) -> tuple[Any, Callable[[list[str]], Any]]:
    vectorizer = CountVectorizer(
        ngram_range=(1, 2), binary=True, token_pattern=_TOKEN_PATTERN, dtype=np.float64
    )
    binary = vectorizer.fit_transform(train.texts)
    positive = np.asarray(train.labels) == 1
    p = np.asarray(binary[positive].sum(axis=0)).ravel() + 1.0
    q = np.asarray(binary[~positive].sum(axis=0)).ravel() + 1.0
    ratios = np.log(p / p.sum()) - np.log(q / q.sum())

    def transform(texts: list[str]) -> Any:
        return vectorizer.transform(texts).multiply(ratios).tocsr()

    return binary.multiply(ratios).tocsr(), transform


def tfidf_logistic_regression(
    fit: Split, validation: Split, test: Split, refit: bool = False
) -> BaselineResult:
    return _best_on_validation(
        "tfidf_logreg",
        "TF-IDF (word uni+bigrams, sublinear tf) + logistic regression",
        TFIDF_BASELINE_C_GRID,
        _tfidf_features,
        fit,
        validation,
        test,
        refit,
    )


def nbsvm(fit: Split, validation: Split, test: Split, refit: bool = False) -> BaselineResult:
    return _best_on_validation(
        "nbsvm",
        "NBSVM (Wang & Manning 2012): binary uni+bigrams x naive-Bayes log-count ratios + "
        "logistic regression",
        NBSVM_BASELINE_C_GRID,
        _nbsvm_features,
        fit,
        validation,
        test,
        refit,
    )


def fit_baselines(
    fit: Split, validation: Split, test: Split, refit: bool = False
) -> dict[str, BaselineResult]:
    """Both baselines, keyed by name; `refit` fits them again on fit + validation at their C."""
    results = [
        tfidf_logistic_regression(fit, validation, test, refit),
        nbsvm(fit, validation, test, refit),
    ]
    return {result.name: result for result in results}
