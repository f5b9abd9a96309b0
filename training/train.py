"""Train, evaluate and publish the sentiment model: `python -m training --help`.

Reads top to bottom: data → vectorize → model → train → evaluate → export → publish.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from training import calibration as calibration_lib
from training import data as data_lib
from training import export as export_lib
from training.model import (
    DEFAULT_PRESET,
    PRESETS,
    Hyperparameters,
    build_model,
    build_vectorizer,
    tokenize,
)

logger = logging.getLogger("training")

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "sentiment-service"
VECTORIZE_CHUNK = 2048
HAND_WRITTEN_SAMPLES = (
    "This movie was wonderful, I loved every minute of it.",
    "Terrible acting, a boring plot and a complete waste of time.",
    "It was fine.",
    "I loved it!",
    "not good",
)


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    version_dir: Path
    metrics: dict[str, dict[str, float | int | None]]
    seconds: float


# --- data ---------------------------------------------------------------------------------


def limit_examples(
    texts: list[str], labels: np.ndarray, limit: int | None, seed: int
) -> tuple[list[str], np.ndarray]:
    """A seeded random slice, for quick runs (tests, compose demos); None keeps everything."""
    if limit is None or limit >= len(texts):
        return texts, labels
    keep = np.sort(np.random.default_rng(seed).permutation(len(texts))[:limit])
    return [texts[i] for i in keep], labels[keep]


# --- vectorize ----------------------------------------------------------------------------


def adapt_vectorizer(params: Hyperparameters, texts: list[str]) -> keras.layers.TextVectorization:
    """Learn the vocabulary from the training split only: validation and test stay unseen."""
    vectorizer = build_vectorizer(params)
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(VECTORIZE_CHUNK))
    logger.info("Vocabulary: %d tokens", vectorizer.vocabulary_size())
    return vectorizer


def vectorize(
    vectorizer: keras.layers.TextVectorization, texts: list[str], never_empty: bool
) -> np.ndarray:
    """Tokenize once up front; the tutorial re-tokenizes every epoch, which dominates its time."""
    chunks = [
        tokenize(
            vectorizer, tf.constant(texts[start : start + VECTORIZE_CHUNK]), never_empty
        ).numpy()
        for start in range(0, len(texts), VECTORIZE_CHUNK)
    ]
    return np.concatenate(chunks)


def as_dataset(
    token_ids: np.ndarray, labels: np.ndarray, batch_size: int, shuffle_seed: int | None = None
) -> tf.data.Dataset:
    dataset = tf.data.Dataset.from_tensor_slices((token_ids, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# --- train --------------------------------------------------------------------------------


def train(
    model: keras.Model,
    params: Hyperparameters,
    train_ds: tf.data.Dataset,
    validation_ds: tf.data.Dataset,
    verbose: int,
) -> keras.callbacks.History:
    callbacks = []
    if params.early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=params.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    return model.fit(
        train_ds,
        validation_data=validation_ds,
        epochs=params.epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the dataset reshuffles itself each epoch
    )


# --- evaluate -----------------------------------------------------------------------------


def predict_logits(model: keras.Model, token_ids: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(token_ids, batch_size=1024, verbose=0)[:, 0], dtype=np.float64)


def evaluate(
    logits: np.ndarray,
    labels: np.ndarray,
    token_ids: np.ndarray,
    calibration: calibration_lib.LengthTemperature,
) -> dict[str, float | int | None]:
    """Accuracy at the 0.5 threshold, ROC AUC (threshold-free), and the served (calibrated)
    probabilities' loss and 15-bin ECE, beside the ECE the raw logits would have had."""
    from sklearn.metrics import roc_auc_score

    counts = calibration_lib.token_counts(token_ids).numpy()[:, 0]
    calibrated = calibration.apply_numpy(logits, counts)
    accuracy = float(np.mean((logits >= 0) == (labels == 1)))
    roc_auc = float(roc_auc_score(labels, logits)) if len(np.unique(labels)) == 2 else None
    return {
        "accuracy": round(accuracy, 4),
        "loss": round(calibration_lib.binary_nll(calibrated, labels), 4),
        "roc_auc": None if roc_auc is None else round(roc_auc, 4),
        "ece": round(calibration_lib.expected_calibration_error(_sigmoid(calibrated), labels), 4),
        "ece_uncalibrated": round(
            calibration_lib.expected_calibration_error(_sigmoid(logits), labels), 4
        ),
        "examples": len(labels),
    }


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64))))


def fit_calibration(
    params: Hyperparameters, logits: np.ndarray, labels: np.ndarray, token_ids: np.ndarray
) -> calibration_lib.LengthTemperature:
    """Fit the preset's calibration on validation data only (the test split stays a report)."""
    if params.calibration == "none":
        return calibration_lib.LengthTemperature()
    if params.calibration == "temperature":
        return calibration_lib.fit_temperature(logits, labels)
    counts = calibration_lib.token_counts(token_ids).numpy()[:, 0]
    return calibration_lib.fit_length_temperature(logits, labels, counts)


def plot_history(history: keras.callbacks.History, path: Path) -> None:
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


def pick_samples(texts: list[str], labels: np.ndarray, seed: int, per_class: int = 3) -> list[str]:
    """Real test reviews of both classes plus short hand-written ones, replayed by the service."""
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for label in (1, 0):
        candidates = np.flatnonzero(labels == label)
        chosen += [
            texts[i]
            for i in rng.choice(candidates, size=min(per_class, len(candidates)), replace=False)
        ]
    return chosen + list(HAND_WRITTEN_SAMPLES)


# --- the whole run ------------------------------------------------------------------------


def run(
    source: str,
    output_dir: Path,
    name: str,
    params: Hyperparameters,
    preset: str,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    limit: int | None = None,
    verbose: int = 2,
) -> TrainingResult:
    started = time.perf_counter()
    keras.utils.set_random_seed(params.seed)

    dataset = data_lib.load(source, cache_dir, seed=params.seed)
    train_texts, train_labels = limit_examples(
        dataset.train_texts, dataset.train_labels, limit, params.seed
    )
    test_texts, test_labels = limit_examples(
        dataset.test_texts, dataset.test_labels, limit, params.seed
    )
    fit_split, validation_split = data_lib.train_validation_split(
        train_texts, train_labels, params.validation_fraction, params.seed
    )
    logger.info(
        "Data: %d train, %d validation, %d test",
        len(fit_split.texts),
        len(validation_split.texts),
        len(test_texts),
    )

    vectorizer = adapt_vectorizer(params, fit_split.texts)
    fit_texts, fit_labels = fit_split.texts, fit_split.labels
    if params.snippets_per_review > 0:
        snippets = data_lib.short_snippets(
            fit_split.texts, fit_split.labels, params.snippets_per_review, params.seed
        )
        fit_texts, fit_labels = (
            fit_texts + snippets.texts,
            np.concatenate([fit_labels, snippets.labels]),
        )
        logger.info("Added %d short training snippets", len(snippets.texts))
    fit_ids = vectorize(vectorizer, fit_texts, params.mask_padding)
    validation_ids = vectorize(vectorizer, validation_split.texts, params.mask_padding)
    test_ids = vectorize(vectorizer, test_texts, params.mask_padding)
    # Short texts are where a bag of words is least calibrated, so they are held out too.
    validation_snippets = data_lib.short_snippets(
        validation_split.texts, validation_split.labels, 1.0, params.seed + 1
    )
    validation_snippet_ids = vectorize(vectorizer, validation_snippets.texts, params.mask_padding)

    model = build_model(params)
    history = train(
        model,
        params,
        as_dataset(fit_ids, fit_labels, params.batch_size, shuffle_seed=params.seed),
        as_dataset(validation_ids, validation_split.labels, 1024),
        verbose,
    )

    validation_logits = predict_logits(model, validation_ids)
    snippet_logits = predict_logits(model, validation_snippet_ids)
    calibration_texts = (
        np.concatenate([validation_ids, validation_snippet_ids])
        if len(snippet_logits)
        else validation_ids
    )
    calibration = fit_calibration(
        params,
        np.concatenate([validation_logits, snippet_logits]),
        np.concatenate([validation_split.labels, validation_snippets.labels]),
        calibration_texts,
    )
    logger.info("Calibration (%s): %s", params.calibration, calibration)
    metrics = {
        "validation": evaluate(
            validation_logits, validation_split.labels, validation_ids, calibration
        ),
        "validation_snippets": evaluate(
            snippet_logits, validation_snippets.labels, validation_snippet_ids, calibration
        ),
        "test": evaluate(predict_logits(model, test_ids), test_labels, test_ids, calibration),
    }
    for split, figures in metrics.items():
        logger.info(
            "%s: accuracy %.4f, loss %.4f, ROC AUC %s, ECE %.4f (uncalibrated %.4f) on %d",
            split,
            figures["accuracy"],
            figures["loss"],
            figures["roc_auc"],
            figures["ece"],
            figures["ece_uncalibrated"],
            figures["examples"],
        )

    staging = export_lib.create_staging_dir(output_dir / name)
    try:
        export_lib.write_saved_model(
            vectorizer, model, staging, calibration, never_empty=params.mask_padding
        )
        samples = pick_samples(test_texts, test_labels, params.seed)
        expected = export_lib.reference_probabilities(
            vectorizer, model, samples, calibration, never_empty=params.mask_padding
        )
        served = export_lib.verify_export(staging, samples, expected)
        plot_history(history, staging / "training_curves.png")
        card = model_card(
            name, preset, params, dataset, limit, metrics, history, samples, served, calibration
        )
        version_dir = export_lib.publish(staging, output_dir / name, card)
    except BaseException:
        export_lib.discard(staging)
        raise
    seconds = time.perf_counter() - started
    logger.info("Done in %.1f s: %s", seconds, version_dir)
    return TrainingResult(version_dir, metrics, seconds)


def model_card(
    name: str,
    preset: str,
    params: Hyperparameters,
    dataset: data_lib.LabelledData,
    limit: int | None,
    metrics: dict[str, Any],
    history: keras.callbacks.History,
    samples: list[str],
    served: np.ndarray,
    calibration: calibration_lib.LengthTemperature,
) -> dict[str, Any]:
    return {
        "name": name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "preset": preset,
        "decision_threshold": 0.5,
        "data": {"source": dataset.source, "sha256": dataset.sha256, "limit": limit},
        "hyperparameters": params.to_dict(),
        "epochs_trained": len(history.history["loss"]),
        "calibration": {
            "method": params.calibration,
            "formula": "probability = sigmoid(logit_raw / T(n)), T(n) = a + b / sqrt(n), "
            "n = real (non-padding) tokens incl. bigrams",
            # A single figure only for plain temperature scaling; T(n) otherwise (a may be < 0:
            # n never exceeds sequence_length, where T is still positive).
            "temperature": calibration.a if calibration.b == 0.0 else None,
            "temperature_by_tokens": {
                str(n): round(calibration.temperature(n), 4)
                for n in (1, 3, 10, 30, 100, 300, params.sequence_length)
            },
            **calibration.to_dict(),
            "fitted_on": "validation split + one short snippet per validation review"
            if params.calibration != "none"
            else None,
            "ece_bins": calibration_lib.ECE_BINS,
        },
        "metrics": metrics,
        "samples": [
            {"text": t, "probability": float(p)} for t, p in zip(samples, served, strict=True)
        ],
        "signature": {
            "name": export_lib.SIGNATURE_NAME,
            "input": export_lib.INPUT_NAME,
            "outputs": ["probability", "logit"],
        },
        "framework": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the sentiment model on IMDB (or your own data) and publish a SavedModel "
        "version under OUTPUT_DIR/NAME/<version>/.",
    )
    parser.add_argument(
        "--data",
        default=data_lib.IMDB_URL,
        help="URL or path: aclImdb .tar.gz, extracted aclImdb directory, or a CSV / "
        "JSON Lines file of text,label rows (label 0/1 or negative/positive). "
        "Default: download the official IMDB archive (cached).",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="where downloads are kept (default: %(default)s)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("model"),
        help="model base directory (default: %(default)s)",
    )
    parser.add_argument("--name", default="sentiment", help="model name (default: %(default)s)")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help="hyperparameter preset (default: %(default)s)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use a seeded random slice of N train and N test examples",
    )
    for field in dataclasses.fields(Hyperparameters):
        if field.name == "early_stopping_patience":
            continue
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=_parse_bool if isinstance(field.default, bool) else type(field.default),
            default=None,
            help=f"override the preset (tutorial: {field.default}, "
            f"default: {getattr(PRESETS['default'], field.name)})",
        )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early-stopping patience in epochs (validation loss)",
    )
    parser.add_argument(
        "--fixed-epochs", action="store_true", help="train exactly --epochs, no early stopping"
    )
    parser.add_argument("--quiet", action="store_true", help="no Keras progress output")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def hyperparameters_from(args: argparse.Namespace) -> Hyperparameters:
    params = PRESETS[args.preset]
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Hyperparameters)
        if getattr(args, f.name, None) is not None
    }
    if args.patience is not None:
        overrides["early_stopping_patience"] = args.patience
    if args.fixed_epochs:
        overrides["early_stopping_patience"] = None
    return dataclasses.replace(params, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        run(
            args.data,
            args.output_dir,
            args.name,
            hyperparameters_from(args),
            args.preset,
            cache_dir=args.cache_dir,
            limit=args.limit,
            verbose=0 if args.quiet else 2,
        )
    except (data_lib.DataError, export_lib.ExportError) as exc:
        logger.error("%s", exc)
        return 2
    return 0
