"""The strongest simple alternatives, fitted in every run so each card says how the model compares,
and VADER, an off-the-shelf reference that is never trained:

* TF-IDF over word unigrams and bigrams + logistic regression;
* NBSVM (Wang & Manning 2012): binary unigram+bigram features scaled by their naive-Bayes
  log-count ratios, then logistic regression;
* VADER (Hutto & Gilbert 2014, the `vaderSentiment` package): a lexicon with rules; its
  compound score c in [-1, 1] read as P(positive) = (c + 1) / 2.

Both baselines are trained on the same mix as the model: the corpora's rows (not the model's
snippets), with the same per-row sample weights (every corpus the same total, labels balanced,
the chosen multipliers). Their regularization strength is picked from a small grid by the same
rule as the model's settings (the mean of the per-domain validation accuracies), so they are
compared at their best, not at a library default; when the model is refitted on training +
validation, so are they. Texts stream from the run's rows file: one word-count pass per split
feeds both featurizers.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression

from training.data import RunData, RunRow
from training.metrics import DomainScore, accuracy_by_group, correct
from training.mixing import row_weights

logger = logging.getLogger(__name__)

# The regularization strengths each baseline picks from on validation. Both optima sit inside
# their grid, and every extra value costs each training run another fit. (The model's own NBSVM
# start, on other features, has its own grid: `training.start.NBSVM_START_C_GRID`.)
TFIDF_BASELINE_C_GRID = (2.0, 8.0, 32.0)
NBSVM_BASELINE_C_GRID = (0.1, 1.0)
_TOKEN_PATTERN = r"(?u)\b\w[\w']*\b"  # keeps "don't" one word, as the model does
_MIN_DF = 2  # TF-IDF's vocabulary: words and pairs of at least two training texts


@dataclass(frozen=True)
class BaselineResult:
    name: str
    description: str
    c: float
    validation_accuracy: dict[str, float]  # per domain
    test_probabilities: np.ndarray = field(repr=False)
    test_accuracy: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "C": self.c,
            "validation_accuracy": {d: round(a, 4) for d, a in self.validation_accuracy.items()},
            "validation_mean": round(DomainScore.of(self.validation_accuracy).mean, 4),
            "test_accuracy": round(self.test_accuracy, 4),
            "seconds_for_both_baselines": round(self.seconds, 1),
        }


class _Rows:
    """Texts of some splits streamed for a featurizer, with their labels and domains noted."""

    def __init__(self, data: RunData, splits: set[str]) -> None:
        self._data, self._splits = data, splits
        self.rows: list[tuple[int, str, str]] = []  # (label, corpus, domain): no texts

    def __iter__(self) -> Iterator[str]:
        for row in self._data.rows(self._splits):
            self.rows.append((row.label, row.corpus, row.domain))
            yield row.text

    @property
    def labels(self) -> np.ndarray:
        return np.array([label for label, _, _ in self.rows], np.float64)

    @property
    def domains(self) -> np.ndarray:
        return np.array([domain for _, _, domain in self.rows], dtype=str)

    def weights(self, multipliers: dict[str, float]) -> np.ndarray:
        pairs = [(corpus, label) for label, corpus, _ in self.rows]
        table = row_weights(Counter(pairs), multipliers)
        return np.array([table[pair] for pair in pairs])


@dataclass
class _Words:
    """Word uni+bigram counts of the training texts, and both baselines' features of them."""

    vectorizer: CountVectorizer
    tfidf_columns: np.ndarray
    tfidf: TfidfTransformer
    ratios: np.ndarray

    @classmethod
    def fit(
        cls, texts: Iterable[str], labels_of: Callable[[], np.ndarray]
    ) -> tuple[_Words, sp.csr_matrix]:
        vectorizer = CountVectorizer(
            ngram_range=(1, 2), token_pattern=_TOKEN_PATTERN, dtype=np.float64
        )
        counts = vectorizer.fit_transform(texts).tocsr()
        labels = labels_of()
        binary = counts.copy()
        binary.data[:] = 1.0
        columns = np.flatnonzero(np.asarray(binary.sum(axis=0)).ravel() >= _MIN_DF)
        tfidf = TfidfTransformer(sublinear_tf=True).fit(counts[:, columns])
        positive = labels == 1
        p = np.asarray(binary[positive].sum(axis=0)).ravel() + 1.0
        q = np.asarray(binary[~positive].sum(axis=0)).ravel() + 1.0
        ratios = np.log(p / p.sum()) - np.log(q / q.sum())
        return cls(vectorizer, columns, tfidf, ratios), counts

    def features(self, counts: sp.csr_matrix) -> dict[str, sp.csr_matrix]:
        binary = counts.copy()
        binary.data[:] = 1.0
        return {
            "tfidf_logreg": self.tfidf.transform(counts[:, self.tfidf_columns]).tocsr(),
            "nbsvm": binary.multiply(self.ratios).tocsr(),
        }


BASELINES = {
    "tfidf_logreg": (
        "TF-IDF (word uni+bigrams, sublinear tf) + logistic regression",
        TFIDF_BASELINE_C_GRID,
    ),
    "nbsvm": (
        "NBSVM (Wang & Manning 2012): binary uni+bigrams x naive-Bayes log-count ratios + "
        "logistic regression",
        NBSVM_BASELINE_C_GRID,
    ),
}


def _fit(features: sp.csr_matrix, labels: np.ndarray, weights: np.ndarray, c: float) -> Any:
    return LogisticRegression(C=c, max_iter=1000).fit(features, labels, sample_weight=weights)


def fit_baselines(
    data: RunData, multipliers: dict[str, float], refit: bool
) -> dict[str, BaselineResult]:
    """Both baselines on the mix, C chosen on validation, scored on the test rows in the rows
    file's order; `refit` fits them again on training + validation at their C."""
    started = time.perf_counter()
    train = _Rows(data, {"train"})
    words, train_counts = _Words.fit(train, lambda: train.labels)
    train_features = words.features(train_counts)
    del train_counts
    validation = _Rows(data, {"validation"})
    validation_features = words.features(words.vectorizer.transform(validation))
    weights = train.weights(multipliers)
    chosen: dict[str, tuple[float, dict[str, float], Any]] = {}
    for name, (_, grid) in BASELINES.items():
        for c in grid:
            model = _fit(train_features[name], train.labels, weights, c)
            right = correct(model.predict_proba(validation_features[name])[:, 1], validation.labels)
            by_domain = accuracy_by_group(right, validation.domains)
            logger.info(
                "Baseline %s C=%g: validation mean %.4f", name, c, DomainScore.of(by_domain).mean
            )
            if (
                name not in chosen
                or DomainScore.of(by_domain).key() > DomainScore.of(chosen[name][1]).key()
            ):
                chosen[name] = (c, by_domain, model)
    del train_features, validation_features
    if refit:
        everything = _Rows(data, {"train", "validation"})
        words, counts = _Words.fit(everything, lambda: everything.labels)
        features = words.features(counts)
        del counts
        weights = everything.weights(multipliers)
        chosen = {
            name: (c, by_domain, _fit(features[name], everything.labels, weights, c))
            for name, (c, by_domain, _) in chosen.items()
        }
        del features
    test = _Rows(data, {"test"})
    test_features = words.features(words.vectorizer.transform(test))
    results = {}
    for name, (c, by_domain, model) in chosen.items():
        description = BASELINES[name][0] + (" (refitted on training + validation)" if refit else "")
        probabilities = model.predict_proba(test_features[name])[:, 1]
        results[name] = BaselineResult(
            name,
            description,
            c,
            by_domain,
            probabilities,
            float(np.mean(correct(probabilities, test.labels))),
            time.perf_counter() - started,
        )
        logger.info("Baseline %s (C=%g): test %.4f", name, c, results[name].test_accuracy)
    return results


def vader_probabilities(rows: Iterable[RunRow]) -> np.ndarray:
    """VADER's (compound + 1) / 2 for each row's text: never trained, a fixed reference."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return np.array(
        [(analyzer.polarity_scores(row.text)["compound"] + 1.0) / 2.0 for row in rows], np.float64
    )
