"""The model card (`model_card.json`) and the training curves published beside the SavedModel.

The card is the version's record: where its data came from, every setting, what training did
and which weights it kept, the calibration, every metric, the baselines and the behavioural
sets, and the gate's decision. The service serves it as is (`GET /v1/model`) and replays its
samples at load time, so they are scored by the export itself, not the Keras model.
"""

from __future__ import annotations

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
from training.config import RunConfig
from training.data import LabelledData, Split
from training.evaluation import DECISION_THRESHOLD, Evaluation
from training.fit import TrainingRecord
from training.gate import GateDecision

CURVES_FILE = "training_curves.png"
# Short hand-written texts recorded with their served probability next to real test reviews,
# so the service's load-time replay covers the inputs users type, the empty one included.
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


def pick_samples(test: Split, seed: int, per_class: int = SAMPLES_PER_CLASS) -> list[str]:
    """Real test reviews of both classes plus short hand-written ones, replayed by the service."""
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for label in (1, 0):
        candidates = np.flatnonzero(test.labels == label)
        picked = rng.choice(candidates, size=min(per_class, len(candidates)), replace=False)
        chosen += [test.texts[i] for i in picked]
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
        fitted_on = "validation split + one short snippet per validation review" + (
            ", scored by the model fitted before the refit" if params.refit else ""
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


def model_card(
    config: RunConfig,
    dataset: LabelledData,
    training: TrainingRecord,
    calibration: calibration_lib.LengthTemperature,
    evaluation: Evaluation,
    samples: list[tuple[str, float]],
    decision: GateDecision,
) -> ModelCard:
    """The card of a candidate version (its number is set when it is published).

    `samples`: each recorded text with the probability the reloaded export served for it.
    """
    # model_validate: `training` is one of the card's extra fields (ModelCard allows them).
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
            "data": {
                "source": dataset.source,
                "domain": dataset.domain,
                "sha256": dataset.sha256,
                "limit": config.data.limit,
            },
            "hyperparameters": config.params.to_dict(),
            "epochs_trained": training.epochs_kept,
            "training": {
                "epochs_run": training.epochs_run,
                "epochs_kept": training.epochs_kept,
                "weights_kept": training.weights_kept,
                "refit": config.params.refit,
            },
            "calibration": calibration_section(config, calibration),
            "baselines": {key: result.to_dict() for key, result in evaluation.baselines.items()},
            "behavioural": evaluation.behaviour,
            "gate": {
                **decision.to_dict(),
                "live_version": evaluation.live.version,
                "live_test_accuracy": evaluation.live.accuracy,
            },
            "signatures": [SIGNATURE_NAME, SCORE_SIGNATURE_NAME, EXPLAIN_SIGNATURE_NAME],
            "framework": {"tensorflow": tf.__version__, "keras": keras.__version__},
        }
    )
