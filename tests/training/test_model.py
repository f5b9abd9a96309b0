"""The architecture is exactly the tutorial's, emitting logits trained from logits."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from training.model import PRESETS, Hyperparameters, build_model, build_vectorizer, standardize


def test_layers_are_the_tutorials_in_order() -> None:
    model = build_model(PRESETS["tutorial"])
    assert [type(layer) for layer in model.layers] == [
        keras.layers.Embedding,
        keras.layers.Dropout,
        keras.layers.GlobalAveragePooling1D,
        keras.layers.Dropout,
        keras.layers.Dense,
    ]
    embedding, dropout_a, _, dropout_b, dense = model.layers
    assert embedding.input_dim == 10_000 and embedding.output_dim == 16
    assert dropout_a.rate == dropout_b.rate == 0.2
    assert dense.units == 1


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
    cleaned = standardize(tf.constant(["Great<br />FILM, really!!"])).numpy()[0].decode()
    assert cleaned.split() == ["great", "film", "really"]
