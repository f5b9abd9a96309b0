"""Both presets share the tutorial's architecture; the default masks padding and reads bigrams."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from training.model import (
    DEFAULT_PRESET,
    PRESETS,
    Hyperparameters,
    build_model,
    build_vectorizer,
    standardize,
    standardize_keep_apostrophes,
)

ARCHITECTURE = [
    keras.layers.Embedding,
    keras.layers.Dropout,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.Dropout,
    keras.layers.Dense,
]


def test_the_default_preset_is_default_and_the_tutorial_is_unchanged() -> None:
    assert DEFAULT_PRESET == "default"
    tutorial = PRESETS["tutorial"]
    assert tutorial == Hyperparameters()
    assert (tutorial.max_tokens, tutorial.sequence_length, tutorial.embedding_dim) == (
        10_000,
        250,
        16,
    )
    assert (tutorial.ngrams, tutorial.mask_padding, tutorial.calibration) == (1, False, "none")
    assert tutorial.standardization == "tutorial" and tutorial.snippets_per_review == 0.0


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_layers_are_the_tutorials_in_order(preset: str) -> None:
    params = PRESETS[preset]
    model = build_model(params)
    assert [type(layer) for layer in model.layers] == ARCHITECTURE
    embedding, dropout_a, _, dropout_b, dense = model.layers
    assert embedding.input_dim == params.max_tokens and embedding.output_dim == 16
    assert embedding.mask_zero is params.mask_padding
    assert dropout_a.rate == dropout_b.rate == params.dropout
    assert dense.units == 1


def test_tutorial_pools_over_padding_and_default_over_real_tokens_only() -> None:
    """The issue's root cause: without a mask a short text is averaged with its padding."""
    outputs = {}
    for preset in ("tutorial", "default"):
        params = dataclasses.replace(PRESETS[preset], max_tokens=50, sequence_length=8)
        model = build_model(params)
        table = np.zeros((50, 16), dtype=np.float32)
        table[7] = 1.0  # a strongly-weighted word; id 0 (padding) stays at zero
        model.layers[0].set_weights([table])
        model.layers[-1].set_weights([np.ones((16, 1), np.float32), np.zeros(1, np.float32)])
        short = np.array([[7, 0, 0, 0, 0, 0, 0, 0]], dtype=np.int64)
        long = np.full((1, 8), 7, dtype=np.int64)
        outputs[preset] = [float(model(x, training=False).numpy()[0, 0]) for x in (short, long)]
    assert outputs["tutorial"][0] == pytest.approx(16 / 8), "the padding dilutes the short text"
    assert outputs["default"][0] == pytest.approx(16.0) == outputs["default"][1]


def test_output_is_an_unbounded_logit() -> None:
    model = build_model(Hyperparameters())
    dense = model.layers[-1]
    assert dense.activation is keras.activations.linear
    dense.set_weights([np.full((16, 1), 50.0, dtype=np.float32), np.array([5.0], dtype=np.float32)])
    model.layers[0].set_weights([np.ones((10_000, 16), dtype=np.float32)])
    logits = model(np.ones((2, 250), dtype=np.int64), training=False).numpy()
    assert logits.shape == (2, 1) and np.all(logits > 1.0), "a sigmoid would cap the output at 1"


def test_loss_is_binary_crossentropy_from_logits() -> None:
    model = build_model(Hyperparameters())
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    assert model.loss.get_config()["from_logits"] is True


def test_vectorizer_settings_and_standardization() -> None:
    vectorizer = build_vectorizer(Hyperparameters())
    config = vectorizer.get_config()
    assert config["max_tokens"] == 10_000 and config["output_sequence_length"] == 250
    assert config["ngrams"] is None
    cleaned = standardize(tf.constant(["Great<br />FILM, really!!"])).numpy()[0].decode()
    assert cleaned.split() == ["great", "film", "really"]


def test_default_standardization_keeps_words_apart_and_apostrophes_in() -> None:
    raw = ["Don't miss it<br />it's 'GREAT', not-good...NOT bad", "Isn\u2019t it?"]
    cleaned = [t.decode().split() for t in standardize_keep_apostrophes(tf.constant(raw)).numpy()]
    assert cleaned[0] == ["don't", "miss", "it", "it's", "great", "not", "good", "not", "bad"]
    assert cleaned[1] == ["isn't", "it"]


def test_default_vectorizer_emits_bigrams() -> None:
    params = dataclasses.replace(PRESETS["default"], max_tokens=100, sequence_length=10)
    vectorizer = build_vectorizer(params)
    vectorizer.adapt(tf.constant(["not good", "not bad at all"]))
    assert {"not good", "not bad", "bad at"} <= set(vectorizer.get_vocabulary())
    ids = vectorizer(tf.constant(["not good"])).numpy()[0]
    assert np.count_nonzero(ids) == 3, "two words and one word pair"


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="standardization"):
        Hyperparameters(standardization="shout")
    with pytest.raises(ValueError, match="calibration"):
        Hyperparameters(calibration="vibes")
