"""Training keeps the linear start unless an epoch beats it, and reports which weights it kept."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from training.fit import as_dataset, train
from training.model import PRESETS, build_model, build_vectorizer, tokenize
from training.start import naive_bayes_start

TEXTS = ["great fun", "awful mess", "great cast", "awful plot"] * 8
LABELS = np.array([1, 0, 1, 0] * 8, np.float32)


def test_a_start_no_epoch_beats_is_kept_and_reported_as_zero_epochs() -> None:
    params = dataclasses.replace(
        PRESETS["default"],
        max_tokens=40,
        ngrams=1,
        embedding_init="naive_bayes",
        counterfactuals=False,
        epochs=3,
        early_stopping_patience=1,
        learning_rate=0.5,  # large steps: training cannot improve on a perfect start
    )
    vectorizer = build_vectorizer(params)
    vectorizer.adapt(tf.constant(TEXTS))
    ids = tokenize(vectorizer, params, tf.constant(TEXTS))
    start = naive_bayes_start(ids, LABELS, vectorizer.get_vocabulary(), params.max_tokens, 0.0)
    model = build_model(params, vectorizer.get_vocabulary(), start)
    start_weights = model.get_weights()
    dataset = as_dataset(ids, LABELS, 8)
    record = train(model, params, dataset, dataset, verbose=0)
    assert record.epochs_run >= 1
    assert record.epochs_kept == 0 and "linear start" in record.weights_kept
    for kept, initial in zip(model.get_weights(), start_weights, strict=True):
        np.testing.assert_array_equal(kept, initial)


def test_without_a_start_the_best_epoch_is_kept() -> None:
    params = dataclasses.replace(PRESETS["tutorial"], max_tokens=40, epochs=2)
    vectorizer = build_vectorizer(params)
    vectorizer.adapt(tf.constant(TEXTS))
    ids = tokenize(vectorizer, params, tf.constant(TEXTS))
    model = build_model(params, vectorizer.get_vocabulary())
    dataset = as_dataset(ids, LABELS, 8)
    record = train(model, params, dataset, dataset, verbose=0)
    assert record.epochs_run == 2 and 1 <= record.epochs_kept <= 2
    assert record.weights_kept.startswith("after epoch")
