"""The tutorial's text classifier: TextVectorization → Embedding → pooling → Dense(1) logits.

The vectorizer is kept apart from the trainable model so reviews are tokenized once, not on every
epoch; `training.export` joins the two again inside one serving graph.
"""

from __future__ import annotations

import dataclasses
import re
import string
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf


@dataclass(frozen=True)
class Hyperparameters:
    """Every knob of the pipeline; the defaults are the tutorial's values."""

    max_tokens: int = 10_000
    sequence_length: int = 250
    embedding_dim: int = 16
    dropout: float = 0.2
    batch_size: int = 32
    learning_rate: float = 1e-3
    epochs: int = 10
    # None trains for exactly `epochs`; otherwise stop when validation loss stalls this long.
    early_stopping_patience: int | None = 2
    validation_fraction: float = 0.2
    seed: int = 42

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, Hyperparameters] = {
    "tutorial": Hyperparameters(),
}
DEFAULT_PRESET = "tutorial"

_PUNCTUATION = f"[{re.escape(string.punctuation)}]"


def standardize(text: tf.Tensor) -> tf.Tensor:
    """The tutorial's cleanup: lowercase, drop IMDB's `<br />` line breaks, strip punctuation."""
    lowercase = tf.strings.lower(text)
    without_html = tf.strings.regex_replace(lowercase, "<br />", " ")
    stripped: tf.Tensor = tf.strings.regex_replace(without_html, _PUNCTUATION, "")
    return stripped


def build_vectorizer(params: Hyperparameters) -> keras.layers.TextVectorization:
    return keras.layers.TextVectorization(
        max_tokens=params.max_tokens,
        standardize=standardize,
        output_mode="int",
        output_sequence_length=params.sequence_length,
        name="vectorizer",
    )


def build_model(params: Hyperparameters) -> keras.Model:
    """Token ids in, one logit out; the sigmoid is applied only in the exported serving graph."""
    model = keras.Sequential(
        [
            keras.Input(shape=(params.sequence_length,), dtype="int64", name="token_ids"),
            keras.layers.Embedding(params.max_tokens, params.embedding_dim, name="embedding"),
            keras.layers.Dropout(params.dropout, name="dropout_embedding"),
            keras.layers.GlobalAveragePooling1D(name="average_pooling"),
            keras.layers.Dropout(params.dropout, name="dropout_pooled"),
            keras.layers.Dense(1, name="logit"),
        ],
        name="sentiment_classifier",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=params.learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],
    )
    return model
