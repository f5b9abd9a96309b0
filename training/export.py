"""Export the trained model as a strings-in, probabilities-out SavedModel and publish it atomically.

The serving graph holds the vectorizer, the classifier and the sigmoid, so the service needs
nothing but `tf.saved_model.load`: preprocessing cannot drift from training. A version is built in
a hidden staging directory and renamed into place only once it is complete and verified, so a
reader (the service's directory watcher, TF Serving) never sees half a model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from training.calibration import LengthTemperature, token_counts
from training.model import tokenize

logger = logging.getLogger(__name__)

SIGNATURE_NAME = "serving_default"
INPUT_NAME = "text"
MODEL_CARD = "model_card.json"
STAGING_PREFIX = ".tmp-"
VERIFY_TOLERANCE = 1e-5


class ExportError(RuntimeError):
    """The exported SavedModel does not reproduce the trained model; nothing is published."""


def write_saved_model(
    vectorizer: keras.layers.TextVectorization,
    model: keras.Model,
    path: Path,
    calibration: LengthTemperature | None = None,
    never_empty: bool = False,
) -> None:
    """Write a SavedModel whose `serving_default` maps raw `text` to `probability` and `logit`.

    `calibration` divides the logit by T(n) of the text's real-token count; the default (T = 1)
    leaves the model's own scores. The served `logit` is the calibrated one, so
    `probability == sigmoid(logit)` holds for every client. `never_empty` must match training
    (see `training.model.tokenize`).
    """
    calibration = calibration or LengthTemperature()
    archive = keras.export.ExportArchive()
    archive.track(vectorizer)
    archive.track(model)

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name=INPUT_NAME)]
    )
    def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
        token_ids = tokenize(vectorizer, text, never_empty)
        logit = calibration.apply(model(token_ids, training=False), token_counts(token_ids))
        return {"probability": tf.sigmoid(logit), "logit": logit}

    archive.add_endpoint(SIGNATURE_NAME, serve)
    archive.write_out(str(path), verbose=False)


def reference_probabilities(
    vectorizer: keras.layers.TextVectorization,
    model: keras.Model,
    texts: Sequence[str],
    calibration: LengthTemperature | None = None,
    never_empty: bool = False,
) -> np.ndarray:
    """Probabilities computed by the in-memory Keras objects, the yardstick for the export."""
    calibration = calibration or LengthTemperature()
    token_ids = tokenize(vectorizer, tf.constant(list(texts)), never_empty)
    logits = calibration.apply(model(token_ids, training=False), token_counts(token_ids))
    return np.asarray(tf.sigmoid(logits).numpy()[:, 0], dtype=np.float64)


def served_probabilities(path: Path, texts: Sequence[str]) -> np.ndarray:
    """Probabilities exactly as the service will compute them: reload and call the signature."""
    serve = tf.saved_model.load(str(path)).signatures[SIGNATURE_NAME]
    outputs = serve(**{INPUT_NAME: tf.constant(list(texts))})
    return np.asarray(outputs["probability"].numpy()[:, 0], dtype=np.float64)


def verify_export(path: Path, texts: Sequence[str], expected: np.ndarray) -> np.ndarray:
    """Reload the export and demand it agrees with the Keras model; returns the served values."""
    served = served_probabilities(path, texts)
    worst = float(np.max(np.abs(served - expected)))
    if worst > VERIFY_TOLERANCE:
        raise ExportError(f"reloaded SavedModel differs from the Keras model by {worst:.2e}")
    logger.info("Export verified: max |served - keras| = %.2e on %d samples", worst, len(texts))
    return served


def existing_versions(base_dir: Path) -> list[int]:
    if not base_dir.is_dir():
        return []
    return sorted(int(p.name) for p in base_dir.iterdir() if p.is_dir() and p.name.isdigit())


def create_staging_dir(base_dir: Path) -> Path:
    """A hidden directory beside the versions: same filesystem, so the final rename is atomic."""
    base_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base_dir))
    # mkdtemp makes it private (0700); a published version must be readable by a service
    # running as another user (a shared volume in compose or Kubernetes).
    staging.chmod(0o755)
    return staging


def publish(staging: Path, base_dir: Path, card: dict[str, Any]) -> Path:
    """Write the model card (with its version number) and rename `staging` to the next version.

    The rename is the single moment of publication; before it no integer directory exists.
    """
    version = max(existing_versions(base_dir), default=0) + 1
    card = {**card, "version": version}
    card_path = staging / MODEL_CARD
    with card_path.open("w", encoding="utf-8") as f:
        json.dump(card, f, indent=2, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    target = base_dir / str(version)
    if target.exists():  # a concurrent publisher won the race; never overwrite a version
        raise ExportError(f"{target} appeared while publishing; retry to take the next version")
    staging.rename(target)
    logger.info("Published %s", target)
    return target


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
