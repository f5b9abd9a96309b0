"""Evaluate: the model's logits on each split, the metrics the card reports, and the live version
scored on the same test split (what the promotion gate compares with).

Accuracy is taken at the 0.5 threshold of the raw logit (calibration is monotone, so it never
changes a decision); loss and ECE are those of the served, calibrated probabilities.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from contract import version_dirs
from training import calibration as calibration_lib
from training import export as export_lib
from training.baselines import BaselineResult
from training.data import Split
from training.fit import SCORING_BATCH, vectorize
from training.gate import LiveVersion
from training.model import Hyperparameters

logger = logging.getLogger(__name__)

# P(positive) at or above this is labelled positive: the service's rule, recorded in the card.
DECISION_THRESHOLD = 0.5


@dataclass(frozen=True)
class Evaluation:
    """Everything measured about a candidate before the gate decides: metrics per split, the
    same run's baselines, the live version on the same test split, the behavioural sets."""

    metrics: dict[str, dict[str, float | int | None]]
    baselines: dict[str, BaselineResult]
    live: LiveVersion
    behaviour: dict[str, Any] | None = None

    @property
    def test_accuracy(self) -> float:
        return float(self.metrics["test"]["accuracy"] or 0.0)

    @property
    def test_ece(self) -> float:
        return float(self.metrics["test"]["ece"] or 0.0)

    def baseline_accuracies(self) -> dict[str, float]:
        return {name: result.test_accuracy for name, result in self.baselines.items()}


class Scored(NamedTuple):
    """One split scored by the Keras model: raw logits, units per text, labels."""

    logits: np.ndarray
    counts: np.ndarray
    labels: np.ndarray


def raw_logits(model: Any, token_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Uncalibrated logits in input order, and each text's real-unit count."""
    logits = []
    for start in range(0, int(token_ids.shape[0]), SCORING_BATCH):
        batch = token_ids[start : start + SCORING_BATCH]
        dense = batch.to_tensor() if isinstance(batch, tf.RaggedTensor) else batch
        logits.append(model(dense, training=False).numpy()[:, 0])
    if isinstance(token_ids, tf.RaggedTensor):
        counts = token_ids.row_lengths().numpy()
    else:
        counts = tf.reduce_sum(tf.cast(tf.not_equal(token_ids, 0), tf.int64), axis=1).numpy()
    return np.concatenate(logits).astype(np.float64), counts


def score_ids(model: Any, token_ids: Any, labels: np.ndarray) -> Scored:
    return Scored(*raw_logits(model, token_ids), labels)


def score_split(vectorizer: Any, model: Any, params: Hyperparameters, split: Split) -> Scored:
    return score_ids(model, vectorize(vectorizer, params, split.texts), split.labels)


def fit_calibration(method: str, scored: list[Scored]) -> calibration_lib.LengthTemperature:
    """The calibration `method` fitted on the given (validation) splits pooled."""
    return calibration_lib.fit(
        method,
        np.concatenate([part.logits for part in scored]),
        np.concatenate([part.labels for part in scored]),
        np.concatenate([part.counts for part in scored]),
    )


def evaluate(
    scored: Scored, calibration: calibration_lib.LengthTemperature
) -> dict[str, float | int | None]:
    """Accuracy at the 0.5 threshold, ROC AUC (threshold-free), and the served (calibrated)
    probabilities' loss and 15-bin ECE, beside the ECE the raw logits would have had."""
    logits, counts, labels = scored
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
    scored: dict[str, Scored], calibration: calibration_lib.LengthTemperature
) -> dict[str, dict[str, float | int | None]]:
    metrics = {split: evaluate(part, calibration) for split, part in scored.items()}
    for split, figures in metrics.items():
        logger.info("%s: %s", split, figures)
    return metrics


def score_live_version(base_dir: Path, test: Split) -> LiveVersion:
    """The highest published version's accuracy on this run's test split."""
    versions = version_dirs(base_dir)
    if not versions:
        return LiveVersion()
    version, path = versions[-1]
    try:
        probabilities = export_lib.load_scorer(path)(test.texts)
    except Exception as exc:  # a broken directory is never served: nothing to beat
        logger.warning("Live version %d could not be scored (%s)", version, type(exc).__name__)
        return LiveVersion(version)
    accuracy = float(np.mean((probabilities >= DECISION_THRESHOLD) == (test.labels == 1)))
    logger.info("Live version %d on this test split: accuracy %.4f", version, accuracy)
    return LiveVersion(version, round(accuracy, 4))
