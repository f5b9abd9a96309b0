"""Evaluate: the model's logits on each split, the calibration fitted on validation, and every
scorer (the model, the same run's baselines, VADER, the live version) on the same test rows,
per domain and per corpus.

Accuracy is taken at the 0.5 threshold of the raw logit (calibration is monotone, so it never
changes a decision); loss and ECE are those of the served, calibrated probabilities.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from sklearn.metrics import roc_auc_score

from contract import version_dirs
from training import calibration as calibration_lib
from training import export as export_lib
from training import metrics as metrics_lib
from training.baselines import BaselineResult
from training.gate import LiveVersion
from training.metrics import DECISION_THRESHOLD
from training.vectorize import Counts, chunked

__all__ = ["DECISION_THRESHOLD"]

logger = logging.getLogger(__name__)

MODEL = "model"
CALIBRATION_SNIPPETS = "snippets"  # the calibration snippets' group when weighting domains


class Scored(NamedTuple):
    """Rows scored by the model: raw logits, units per text, labels, domains and corpora."""

    logits: np.ndarray
    counts: np.ndarray
    labels: np.ndarray
    domains: np.ndarray
    corpora: np.ndarray

    @classmethod
    def of(cls, logits: np.ndarray, rows: Counts) -> Scored:
        return cls(logits, rows.lengths, rows.labels, rows.domains, rows.corpora)


def domain_balanced_weights(groups: np.ndarray) -> np.ndarray:
    """A weight per row giving every group (domain) the same total; mean 1."""
    _, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    weights = 1.0 / sizes[inverse]
    return np.asarray(weights * len(groups) / weights.sum())


def fit_calibration(
    method: str, validation: Scored, snippets: Scored
) -> calibration_lib.LengthTemperature:
    """The calibration `method` fitted on the validation rows and the calibration snippets,
    each domain (and the snippets, as one more) weighing the same: a calibration that holds on
    every domain, not only on the biggest."""
    groups = np.concatenate(
        [validation.domains, np.full(len(snippets.labels), CALIBRATION_SNIPPETS)]
    )
    return calibration_lib.fit(
        method,
        np.concatenate([validation.logits, snippets.logits]),
        np.concatenate([validation.labels, snippets.labels]),
        np.concatenate([validation.counts, snippets.counts]),
        sample_weight=domain_balanced_weights(groups),
    )


def evaluate(
    scored: Scored, calibration: calibration_lib.LengthTemperature
) -> dict[str, float | int | None]:
    """Accuracy at the 0.5 threshold, ROC AUC (threshold-free), and the served (calibrated)
    probabilities' loss and 15-bin ECE, beside the ECE the raw logits would have had."""
    logits, counts, labels = scored.logits, scored.counts, scored.labels
    calibrated = calibration.apply_numpy(logits, counts)
    accuracy = float(np.mean((logits >= 0) == (labels == 1)))
    roc_auc = float(roc_auc_score(labels, logits)) if len(np.unique(labels)) == 2 else None
    return {
        "accuracy": round(accuracy, 4),
        "loss": round(calibration_lib.binary_nll(calibrated, labels), 4),
        "roc_auc": None if roc_auc is None else round(roc_auc, 4),
        "ece": round(
            calibration_lib.expected_calibration_error(calibration_lib.sigmoid(calibrated), labels),
            4,
        ),
        "ece_uncalibrated": round(
            calibration_lib.expected_calibration_error(calibration_lib.sigmoid(logits), labels), 4
        ),
        "examples": len(labels),
    }


def metrics_by_split(
    scored: Mapping[str, Scored], calibration: calibration_lib.LengthTemperature
) -> dict[str, dict[str, float | int | None]]:
    metrics = {split: evaluate(part, calibration) for split, part in scored.items()}
    for split, figures in metrics.items():
        logger.info("%s: %s", split, figures)
    return metrics


def score_live_version(
    base_dir: Path, texts: Iterable[str], labels: np.ndarray
) -> tuple[LiveVersion, np.ndarray | None]:
    """The highest published version's probabilities on this run's test rows (its card's own
    figures may come from other data), and its pooled accuracy."""
    versions = version_dirs(base_dir)
    if not versions:
        return LiveVersion(), None
    version, path = versions[-1]
    try:
        scorer = export_lib.load_scorer(path)
        probabilities = np.concatenate([scorer(chunk) for chunk in chunked(texts)])
    except Exception as exc:  # a broken directory is never served: nothing to beat
        logger.warning("Live version %d could not be scored (%s)", version, type(exc).__name__)
        return LiveVersion(version), None
    accuracy = float(np.mean(metrics_lib.correct(probabilities, labels)))
    logger.info("Live version %d on this run's test rows: accuracy %.4f", version, accuracy)
    return LiveVersion(version, round(accuracy, 4)), probabilities


@dataclass(frozen=True)
class Evaluation:
    """Everything measured about a candidate before the gate decides: the model's metrics per
    split, every scorer on the same test rows (per domain and per corpus), the same run's
    baselines, the live version, the behavioural sets."""

    metrics: dict[str, dict[str, float | int | None]]
    test: Scored
    # P(positive) on the test rows: the model (calibrated), the baselines, VADER, the live one.
    scorers: dict[str, np.ndarray]
    baselines: dict[str, BaselineResult]
    live: LiveVersion
    behaviour: dict[str, Any] | None = None
    by_domain: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    by_corpus: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        metrics: dict[str, dict[str, float | int | None]],
        test: Scored,
        scorers: dict[str, np.ndarray],
        baselines: dict[str, BaselineResult],
        live: LiveVersion,
    ) -> Evaluation:
        return cls(
            metrics,
            test,
            scorers,
            baselines,
            live,
            by_domain=metrics_lib.table(scorers, test.labels, test.domains),
            by_corpus=metrics_lib.table(scorers, test.labels, test.corpora),
        )

    @property
    def domains(self) -> list[str]:
        return list(self.by_domain)

    def accuracies(self, scorer: str) -> dict[str, float]:
        """`scorer`'s test accuracy per domain (empty if it was not scored)."""
        return {
            domain: figures[scorer]["accuracy"]
            for domain, figures in self.by_domain.items()
            if scorer in figures
        }

    def mean_accuracy(self, scorer: str, without: tuple[str, ...] = ()) -> float | None:
        values = [a for d, a in self.accuracies(scorer).items() if d not in without]
        return round(float(np.mean(values)), 4) if values else None
