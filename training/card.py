"""The model card (`model_card.json`) and the training curves published beside the SavedModel.

The card is the version's record: the corpora it was trained on (rows, terms, duplicates),
every setting and what was tried on validation to choose it, what training did and which
weights it kept, the calibration, every metric per domain and per corpus beside the same run's
baselines, VADER and the live version, the behavioural sets, the memory and time the run took,
and the gate's decision. The service serves it as is (`GET /v1/model`) and replays its samples
at load time, so they are scored by the export itself, not the Keras model.
"""

from __future__ import annotations

import os
import resource
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from contract import (
    EXPLAIN_SIGNATURE_NAME,
    SCORE_SIGNATURE_NAME,
    SIGNATURE_NAME,
    ModelCard,
    Sample,
    SignatureInfo,
)
from training import calibration as calibration_lib
from training import corpora, splits
from training.config import RunConfig
from training.data import RunData
from training.epochs import TrainingRecord
from training.evaluation import MODEL, Evaluation
from training.fit import Fitted
from training.gate import GateDecision
from training.metrics import DECISION_THRESHOLD

CURVES_FILE = "training_curves.png"
# Short hand-written texts recorded with their served probability next to real test rows, so
# the service's load-time replay covers the inputs users type, the empty one included.
HAND_WRITTEN_SAMPLES = (
    "This movie was wonderful, I loved every minute of it.",
    "Terrible acting, a boring plot and a complete waste of time.",
    "It was fine.",
    "I loved it!",
    "not good",
    "I did not like it",
    "not bad at all",
    "",
)
SAMPLES_PER_CLASS = 3
# Unit counts at which the card spells out the calibration's temperature T(n).
TEMPERATURE_TABLE_UNITS = (1, 3, 10, 30, 100, 300)
# Fewer test rows than this: the card marks the figures as too noisy to compare on their own
# (accuracy +-0.02, an ECE floor of ~0.04).
SMALL_ROWS = 300
SCORER_DESCRIPTIONS = {
    MODEL: "this version (calibrated probabilities, as served)",
    "tfidf_logreg": "TF-IDF + logistic regression, trained on the same mix in this run",
    "nbsvm": "NBSVM, trained on the same mix in this run",
    "vader": "VADER (vaderSentiment 3.3.2), never trained: P(positive) = (compound + 1) / 2",
    "live": "the live version before this one, scored on the same rows",
}


def pick_samples(data: RunData, labels: np.ndarray, seed: int) -> list[str]:
    """Real test rows of both classes plus short hand-written ones, replayed by the service."""
    rng = np.random.default_rng(seed)
    picked: set[int] = set()
    for label in (1, 0):
        candidates = np.flatnonzero(labels == label)
        size = min(SAMPLES_PER_CLASS, len(candidates))
        picked |= set(rng.choice(candidates, size=size, replace=False).tolist())
    chosen = [row.text for i, row in enumerate(data.rows({"test"})) if i in picked]
    return chosen + list(HAND_WRITTEN_SAMPLES)


def plot_history(history: Any, path: Path) -> None:
    """Loss and accuracy per epoch, training beside validation."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        epochs = range(1, len(history.history[metric]) + 1)
        axis.plot(epochs, history.history[metric], "o-", label=f"training {metric}")
        axis.plot(epochs, history.history[f"val_{metric}"], "s-", label=f"validation {metric}")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def calibration_section(
    config: RunConfig, calibration: calibration_lib.LengthTemperature
) -> dict[str, Any]:
    params = config.params
    fitted_on = None
    if params.calibration != "none":
        fitted_on = (
            "validation rows + one short snippet per long validation review, each domain (and "
            "the snippets) weighing the same"
            + (", scored by the model fitted before the refit" if params.refit else "")
        )
    return {
        "method": params.calibration,
        "formula": calibration_lib.FORMULA,
        **calibration.to_dict(),
        "temperature_by_units": {
            str(n): round(calibration.temperature(n), 4)
            for n in (*TEMPERATURE_TABLE_UNITS, params.sequence_length)
        },
        "fitted_on": fitted_on,
        "ece_bins": calibration_lib.ECE_BINS,
    }


def data_section(config: RunConfig, data: RunData, chosen: dict[str, float]) -> dict[str, Any]:
    """The corpora (files, hashes, domains, terms, rows per split), the split rule and the
    duplicates it found."""
    table = data.table()
    return {
        "mix": data.mix.source,
        "datasets": config.data.datasets,
        "limit": data.limit,
        "split_rule": {
            "key": "sha256 of the normalised text (lowercase, non-alphanumerics removed, "
            "whitespace collapsed)",
            "salt": splits.SPLIT_SALT.decode().rstrip("\0"),
            "fractions": {
                "train": splits.TRAIN_FRACTION,
                "validation": splits.VALIDATION_FRACTION,
                "test": round(1 - splits.TRAIN_FRACTION - splits.VALIDATION_FRACTION, 2),
            },
            "official_test_splits": "kept as published (IMDB's 25,000 test reviews)",
        },
        "corpora": {
            source.name: {
                **source.description,
                "origin": source.origin,
                "sha256": source.sha256,
                "weight": chosen.get(source.name, 1.0),
                "rows": table["corpora"].get(source.name, {}),
            }
            for source in data.sources
        },
        "domains": table["domains"],
        "duplicates": data.report.to_dict(),
    }


def per_domain_section(evaluation: Evaluation, imdb_domains: set[str]) -> dict[str, Any]:
    """Every scorer per domain and per corpus on the same test rows, with the means the
    targets are stated in."""
    scorers = list(evaluation.scorers)
    return {
        "scorers": {name: SCORER_DESCRIPTIONS.get(name, name) for name in scorers},
        "mean_accuracy": {name: evaluation.mean_accuracy(name) for name in scorers},
        "mean_accuracy_without_imdb_domains": {
            name: evaluation.mean_accuracy(name, tuple(sorted(imdb_domains))) for name in scorers
        },
        "imdb_domains": sorted(imdb_domains),
        "small_below_rows": SMALL_ROWS,
        "test_by_domain": evaluation.by_domain,
        "test_by_corpus": evaluation.by_corpus,
    }


def resources_section(started: float, now: float) -> dict[str, Any]:
    """Peak memory and wall time of the run up to the card (the export follows)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_bytes = peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB
    return {
        "peak_rss_mb": round(peak_bytes / 2**20, 1),
        "wall_seconds": round(now - started, 1),
        "cpus": os.cpu_count(),
    }


def model_card(
    config: RunConfig,
    data: RunData,
    fitted: Fitted,
    training: TrainingRecord,
    calibration: calibration_lib.LengthTemperature,
    evaluation: Evaluation,
    samples: list[tuple[str, float]],
    decision: GateDecision,
    resources: dict[str, Any],
) -> ModelCard:
    """The card of a candidate version (its number is set when it is published).

    `samples`: each recorded text with the probability the reloaded export served for it.
    """
    chosen = fitted.selection.best.multipliers
    imdb_domains = {d for (c, d, *_), n in data.counts.items() if c == corpora.IMDB and n}
    # model_validate: several sections are the card's extra fields (ModelCard allows them).
    return ModelCard.model_validate(
        {
            "name": config.output.name,
            "version": 0,  # set by publish()
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "preset": config.preset,
            "decision_threshold": DECISION_THRESHOLD,
            "samples": [Sample(text=text, probability=p) for text, p in samples],
            "signature": SignatureInfo(),
            "metrics": evaluation.metrics,
            "per_domain": per_domain_section(evaluation, imdb_domains),
            "data": data_section(config, data, chosen),
            "hyperparameters": config.params.to_dict(),
            "selection": {
                **fitted.selection.to_dict(),
                "start": None if fitted.start is None else fitted.start.description,
            },
            "epochs_trained": training.epochs_kept,
            "training": {
                "epochs_run": training.epochs_run,
                "epochs_kept": training.epochs_kept,
                "weights_kept": training.weights_kept,
                "kept_if": "an epoch beats the start on the mean per-domain validation accuracy",
                "refit": config.params.refit,
            },
            "calibration": calibration_section(config, calibration),
            "baselines": {key: result.to_dict() for key, result in evaluation.baselines.items()},
            "behavioural": evaluation.behaviour,
            "resources": resources,
            "gate": {
                **decision.to_dict(),
                "live_version": evaluation.live.version,
                "live_test_accuracy": evaluation.live.accuracy,
            },
            "signatures": [SIGNATURE_NAME, SCORE_SIGNATURE_NAME, EXPLAIN_SIGNATURE_NAME],
            "framework": {"tensorflow": tf.__version__, "keras": keras.__version__},
        }
    )
