"""The classifier family: TextVectorization → Embedding → pooling → Dense(1) logits.

Two presets share the architecture. `tutorial` is the TensorFlow text-classification tutorial,
kept exactly for comparison. `default` fixes what the tutorial's figures show: padding is masked so
the pooling averages real tokens only (a three-word text is no longer pulled toward the padding
token), word bigrams over a larger vocabulary capture "not good", sequences are long enough not to
cut typical reviews, and punctuation splits words instead of gluing them ("not-good").

The vectorizer is kept apart from the trainable model so reviews are tokenized once, not on every
epoch; `training.export` joins the two again inside one serving graph.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

STANDARDIZATIONS = ("tutorial", "keep_apostrophes")
CALIBRATIONS = ("none", "temperature", "length")


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
    # 1 = single words (the tutorial); 2 = words and word pairs.
    ngrams: int = 1
    # Embedding(mask_zero=True): pooling averages real tokens, not the padding.
    mask_padding: bool = False
    # One of STANDARDIZATIONS.
    standardization: str = "tutorial"
    # Short snippets cut from each training review (labelled with the review) per review, so the
    # model also learns from inputs as short as the ones users type; 0 disables.
    snippets_per_review: float = 0.0
    # One of CALIBRATIONS, fitted on the validation split and baked into the exported graph:
    # "temperature" divides the logit by one T; "length" by T(n) = a + b / sqrt(n), n = real tokens.
    calibration: str = "none"

    def __post_init__(self) -> None:
        if self.standardization not in STANDARDIZATIONS:
            raise ValueError(f"standardization must be one of {STANDARDIZATIONS}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}")
        if self.ngrams < 1:
            raise ValueError("ngrams must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, Hyperparameters] = {
    "tutorial": Hyperparameters(),
    # Chosen on the validation split (see the training README table); never on the test set.
    # Validation accuracy (long reviews / short snippets): 600 positions + 1 snippet per review
    # 0.902 / 0.709; no snippets 0.910 / 0.711; this 0.911 / 0.720.
    "default": Hyperparameters(
        max_tokens=100_000,
        # Unigrams come first, then bigrams: 1000 ids keep every word of 99% of reviews and
        # every bigram of reviews up to 500 words (~88% of them; the median is 174 words).
        sequence_length=1000,
        embedding_dim=16,
        dropout=0.4,
        ngrams=2,
        mask_padding=True,
        standardization="keep_apostrophes",
        snippets_per_review=0.3,
        calibration="length",
        epochs=20,
        early_stopping_patience=2,
    ),
}
DEFAULT_PRESET = "default"

_PUNCTUATION = f"[{re.escape(string.punctuation)}]"
# Everything but the apostrophe, so "don't" and "isn't" stay one token each.
_PUNCTUATION_BUT_APOSTROPHE = f"[{re.escape(string.punctuation.replace(chr(39), ''))}]"


def standardize(text: tf.Tensor) -> tf.Tensor:
    """The tutorial's cleanup: lowercase, drop IMDB's `<br />` line breaks, strip punctuation."""
    lowercase = tf.strings.lower(text)
    without_html = tf.strings.regex_replace(lowercase, "<br />", " ")
    stripped: tf.Tensor = tf.strings.regex_replace(without_html, _PUNCTUATION, "")
    return stripped


def standardize_keep_apostrophes(text: tf.Tensor) -> tf.Tensor:
    """Lowercase, drop `<br />`, turn punctuation into spaces so "not-good" stays two words.

    Apostrophes survive inside words ("don't"); quote marks around words are dropped, so
    "'great'" and "great" are the same token.
    """
    lowercase = tf.strings.lower(text, encoding="utf-8")
    without_html = tf.strings.regex_replace(lowercase, "<br */?>", " ")
    curly_apostrophes = tf.strings.regex_replace(without_html, "[\u2018\u2019]", "'")
    spaced = tf.strings.regex_replace(curly_apostrophes, _PUNCTUATION_BUT_APOSTROPHE, " ")
    # An apostrophe not between two letters is a quote mark, not part of a word.
    unquoted: tf.Tensor = tf.strings.regex_replace(spaced, "(^|[^a-z])'+|'+([^a-z]|$)", "\\1 \\2")
    return unquoted


_STANDARDIZERS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "tutorial": standardize,
    "keep_apostrophes": standardize_keep_apostrophes,
}


def build_vectorizer(params: Hyperparameters) -> keras.layers.TextVectorization:
    return keras.layers.TextVectorization(
        max_tokens=params.max_tokens,
        standardize=_STANDARDIZERS[params.standardization],
        output_mode="int",
        output_sequence_length=params.sequence_length,
        ngrams=None if params.ngrams == 1 else params.ngrams,
        name="vectorizer",
    )


def build_model(params: Hyperparameters) -> keras.Model:
    """Token ids in, one logit out; the sigmoid is applied only in the exported serving graph.

    With `mask_padding` the Embedding emits a mask that Dropout passes on and
    GlobalAveragePooling1D honours, so the average runs over real tokens only.
    """
    model = keras.Sequential(
        [
            keras.Input(shape=(params.sequence_length,), dtype="int64", name="token_ids"),
            keras.layers.Embedding(
                params.max_tokens,
                params.embedding_dim,
                mask_zero=params.mask_padding,
                name="embedding",
            ),
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


def tokenize(
    vectorizer: keras.layers.TextVectorization, texts: tf.Tensor, never_empty: bool
) -> tf.Tensor:
    """Token ids for `texts`; with `never_empty` a text with no tokens becomes one unknown token.

    A masked average over zero tokens is 0/0 = NaN, which would poison training (a snippet of
    bare punctuation) and serving (an empty string). The unknown-token id 1 stands for "no
    evidence", the same as a text of only unseen words. Off for the tutorial, which pools the
    padding and must stay exactly as it was.
    """
    token_ids: tf.Tensor = vectorizer(texts)
    if not never_empty:
        return token_ids
    empty = tf.reduce_all(tf.equal(token_ids, 0), axis=1, keepdims=True)
    first_position = tf.equal(tf.range(tf.shape(token_ids)[1]), 0)[tf.newaxis, :]
    unknown = tf.ones_like(token_ids)
    guarded: tf.Tensor = tf.where(empty & first_position, unknown, token_ids)
    return guarded
