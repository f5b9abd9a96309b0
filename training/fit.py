"""Vectorize, start and train: the model fitted on the fit split with every setting chosen on
validation, then (`refit`) the same settings fitted again on every training review.

The vectorizer is adapted on training texts only, and texts are tokenized once up front (the
tutorial re-tokenizes every epoch, which dominates its time). Ragged token ids are bucketed by
length and padded per batch, so a short text never carries a long one's padding.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from training.augment import negated_snippets
from training.data import Split, Splits, short_snippets
from training.model import Hyperparameters, build_model, build_vectorizer, tokenize
from training.start import (
    NBSVM_START_C_GRID,
    SHORT_TEXT_WEIGHTS,
    LinearStart,
    naive_bayes_start,
    nbsvm_start,
)

logger = logging.getLogger(__name__)

VECTORIZE_CHUNK = 2048
# Length buckets for training batches: texts of similar length are padded together.
LENGTH_BUCKETS = (16, 64, 128, 256, 512, 1024)
# Batch size when only scoring (validation during training): no gradients, so larger is cheaper.
SCORING_BATCH = 1024


# --- vectorize ----------------------------------------------------------------------------


def adapt_vectorizer(params: Hyperparameters, texts: list[str]) -> Any:
    """Learn the vocabulary from the training split only: validation and test stay unseen."""
    vectorizer = build_vectorizer(params)
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(VECTORIZE_CHUNK))
    logger.info("Vocabulary: %d units", vectorizer.vocabulary_size())
    return vectorizer


def vectorize(vectorizer: Any, params: Hyperparameters, texts: list[str]) -> Any:
    """Token ids of `texts` exactly as the model sees them, in chunks."""
    chunks = [
        tokenize(vectorizer, params, tf.constant(texts[start : start + VECTORIZE_CHUNK], tf.string))
        for start in range(0, max(len(texts), 1), VECTORIZE_CHUNK)
    ]
    return tf.concat(chunks, axis=0)


def as_dataset(
    token_ids: Any,
    labels: np.ndarray,
    batch_size: int,
    shuffle_seed: int | None = None,
    sample_weights: np.ndarray | None = None,
) -> Any:
    """Batches for Keras; ragged ids are bucketed by length and padded per batch (masked)."""
    targets = tf.constant(labels.astype(np.float32))
    extra = () if sample_weights is None else (tf.constant(sample_weights.astype(np.float32)),)
    if isinstance(token_ids, tf.RaggedTensor):
        values, splits = token_ids.flat_values, token_ids.row_splits
        dataset = tf.data.Dataset.range(len(labels)).map(
            lambda i: (values[splits[i] : splits[i + 1]], targets[i], *(w[i] for w in extra))
        )
    else:
        dataset = tf.data.Dataset.from_tensor_slices((token_ids, targets, *extra))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    if isinstance(token_ids, tf.RaggedTensor):
        dataset = dataset.bucket_by_sequence_length(
            _length,
            bucket_boundaries=list(LENGTH_BUCKETS),
            bucket_batch_sizes=[batch_size] * (len(LENGTH_BUCKETS) + 1),
        )
    else:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _length(token_ids: tf.Tensor, *label_and_weight: tf.Tensor) -> tf.Tensor:
    return tf.shape(token_ids)[0]


def short_training_texts(
    vectorizer: Any, params: Hyperparameters, fit: Split, naive_bayes: LinearStart | None
) -> tuple[Split, Any]:
    """Snippets cut from the training reviews and, if enabled, their negated counterfactuals,
    with their token ids."""
    if params.snippets_per_review <= 0:
        empty = Split([], np.zeros(0, np.float32))
        return empty, vectorize(vectorizer, params, empty.texts)
    snippets = short_snippets(fit.texts, fit.labels, params.snippets_per_review, params.seed)
    short, ids = snippets, [vectorize(vectorizer, params, snippets.texts)]
    if params.counterfactuals and naive_bayes is not None:
        negated = negated_snippets(naive_bayes, snippets, ids[0])
        short, ids = short + negated, [*ids, vectorize(vectorizer, params, negated.texts)]
    logger.info("Added %d short training texts (snippets, counterfactuals)", len(short))
    return short, tf.concat(ids, axis=0)


@dataclasses.dataclass(frozen=True)
class TrainingInputs:
    """Training reviews and their short texts, tokenized by a vocabulary adapted to them."""

    vectorizer: Any
    review_ids: Any
    naive_bayes: LinearStart | None
    train_ids: Any
    train_labels: np.ndarray
    reviews: int  # the first rows of train_ids; the short texts follow

    def dataset(self, params: Hyperparameters, start: LinearStart | None) -> Any:
        """Shuffled (seeded) training batches of reviews and short texts, the short texts
        weighted as the start chose."""
        weights = np.ones(len(self.train_labels), np.float32)
        weights[self.reviews :] = 1.0 if start is None else start.short_text_weight
        return as_dataset(
            self.train_ids,
            self.train_labels,
            params.batch_size,
            shuffle_seed=params.seed,
            sample_weights=weights,
        )


def training_inputs(params: Hyperparameters, reviews: Split) -> TrainingInputs:
    vectorizer = adapt_vectorizer(params, reviews.texts)
    review_ids = vectorize(vectorizer, params, reviews.texts)
    naive_bayes = None
    if params.embedding_init != "uniform":
        naive_bayes = naive_bayes_start(
            review_ids,
            reviews.labels,
            vectorizer.get_vocabulary(),
            params.max_tokens,
            params.negation_tie,
        )
    short, short_ids = short_training_texts(vectorizer, params, reviews, naive_bayes)
    train_ids = tf.concat([review_ids, short_ids], axis=0)
    train_labels = np.concatenate([reviews.labels, short.labels])
    return TrainingInputs(
        vectorizer, review_ids, naive_bayes, train_ids, train_labels, len(reviews)
    )


# --- start --------------------------------------------------------------------------------


def linear_start(
    params: Hyperparameters,
    inputs: TrainingInputs,
    reviews: Split,
    validation: tuple[Any, np.ndarray] | None,
    c_grid: tuple[float, ...] = NBSVM_START_C_GRID,
    short_text_weights: tuple[float, ...] = (1.0,),
    negation_check: tuple[Any, np.ndarray] | None = None,
) -> LinearStart | None:
    """Where the embedding starts (`training.start`); NBSVM's C and the short texts' weight
    from their grids on validation."""
    start = inputs.naive_bayes
    if params.embedding_init == "nbsvm":
        start = nbsvm_start(
            inputs.train_ids,
            inputs.train_labels,
            validation,
            inputs.vectorizer.get_vocabulary(),
            params.max_tokens,
            params.negation_tie,
            inputs.review_ids,
            reviews.labels,
            c_grid,
            short_text_weights,
            negation_check,
        )
    if start is not None:
        logger.info(
            "Start: %s; logit = %.2f x mean score %+.2f", start.description, start.scale, start.bias
        )
    return start


def validation_counterfactuals(
    params: Hyperparameters, inputs: TrainingInputs, snippets: Split, snippet_ids: Any
) -> tuple[Any, np.ndarray] | None:
    """The validation snippets negated as the training ones are (labels flipped), tokenized:
    how the short texts' weight is checked for what it costs negation."""
    if not params.counterfactuals or inputs.naive_bayes is None:
        return None
    negated = negated_snippets(inputs.naive_bayes, snippets, snippet_ids)
    return vectorize(inputs.vectorizer, params, negated.texts), negated.labels


# --- train --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainingRecord:
    """What training did: epochs run, and which weights were kept (the card reports both)."""

    epochs_run: int
    # Epochs of training the kept weights hold: 0 when the start was kept (training never beat
    # it on validation), else the best epoch's number. A refit trains exactly this many.
    epochs_kept: int
    history: Any

    @property
    def weights_kept(self) -> str:
        if self.epochs_kept == 0:
            return "the linear start (no epoch beat it on validation)"
        return f"after epoch {self.epochs_kept} of {self.epochs_run}"


def train(
    model: Any, params: Hyperparameters, train_ds: Any, validation_ds: Any, verbose: int
) -> TrainingRecord:
    """Fit `model` and keep its best weights on validation (the start's when none beat it)."""
    # A linear start is already a strong model: keep it unless training beats it on validation
    # accuracy, and stop once `patience` epochs have not. Not on loss: the start's scale is a
    # one-feature fit that training improves at once, so a lower loss came with worse
    # decisions, and waiting for the loss to stall spent many epochs that were then discarded.
    has_start = params.embedding_init != "uniform"
    start_weights = model.get_weights() if has_start else []
    start_accuracy = float(model.evaluate(validation_ds, verbose=0)[1]) if has_start else 0.0
    stopping = None
    if params.early_stopping_patience is not None:
        monitor = (
            {"monitor": "val_accuracy", "mode": "max", "baseline": start_accuracy}
            if has_start
            else {"monitor": "val_loss"}
        )
        stopping = keras.callbacks.EarlyStopping(
            patience=params.early_stopping_patience, restore_best_weights=True, **monitor
        )
    history = model.fit(
        train_ds,
        validation_data=validation_ds,
        epochs=params.epochs,
        callbacks=[] if stopping is None else [stopping],
        verbose=verbose,
    )
    epochs_run = len(history.history["loss"])
    epochs_kept = epochs_run if stopping is None else stopping.best_epoch + 1
    if has_start:
        trained_accuracy = float(model.evaluate(validation_ds, verbose=0)[1])
        if start_accuracy >= trained_accuracy:
            model.set_weights(start_weights)
            logger.info(
                "Training did not improve on the start (validation accuracy %.4f, trained %.4f)",
                start_accuracy,
                trained_accuracy,
            )
            epochs_kept = 0
    return TrainingRecord(epochs_run, epochs_kept, history)


@dataclasses.dataclass(frozen=True)
class Fitted:
    """A vectorizer and model fitted on some reviews, and what was chosen on validation."""

    vectorizer: Any
    model: Any
    start: LinearStart | None
    training: TrainingRecord
    # The held-out model's validation reviews and snippets, tokenized once for all its uses.
    validation_ids: Any = None
    validation_snippet_ids: Any = None


def fit_choosing_on_validation(params: Hyperparameters, splits: Splits, verbose: int) -> Fitted:
    """Vocabulary, start and training on the fit split; C and epochs chosen on validation."""
    inputs = training_inputs(params, splits.fit)
    validation_ids = vectorize(inputs.vectorizer, params, splits.validation.texts)
    snippet_ids = vectorize(inputs.vectorizer, params, splits.validation_snippets.texts)
    negation_check = validation_counterfactuals(
        params, inputs, splits.validation_snippets, snippet_ids
    )
    start = linear_start(
        params,
        inputs,
        splits.fit,
        (validation_ids, splits.validation.labels),
        short_text_weights=(1.0,) if negation_check is None else SHORT_TEXT_WEIGHTS,
        negation_check=negation_check,
    )
    model = build_model(params, inputs.vectorizer.get_vocabulary(), start)
    record = train(
        model,
        params,
        inputs.dataset(params, start),
        as_dataset(validation_ids, splits.validation.labels, SCORING_BATCH),
        verbose,
    )
    return Fitted(inputs.vectorizer, model, start, record, validation_ids, snippet_ids)


def refit(params: Hyperparameters, reviews: Split, chosen: Fitted, verbose: int) -> Fitted:
    """The settings chosen on validation, fitted again on every training review.

    Once validation has chosen C and the epochs, holding its reviews out only costs data
    (docs/model.md, version 6). The vocabulary and the naive-Bayes ratios are rebuilt from all
    reviews; the calibration stays the one fitted on the held-out model's validation logits.
    """
    inputs = training_inputs(params, reviews)
    c_grid: tuple[float, ...] = NBSVM_START_C_GRID
    weights: tuple[float, ...] = (1.0,)
    if chosen.start is not None and chosen.start.c is not None:
        c_grid, weights = (chosen.start.c,), (chosen.start.short_text_weight,)
    start = linear_start(params, inputs, reviews, None, c_grid, weights)
    model = build_model(params, inputs.vectorizer.get_vocabulary(), start)
    epochs = chosen.training.epochs_kept
    if epochs:
        model.fit(inputs.dataset(params, start), epochs=epochs, verbose=verbose)
    logger.info("Refit on %d training reviews (%d epochs)", len(reviews), epochs)
    return Fitted(inputs.vectorizer, model, start, chosen.training)
