"""The streamed vocabulary is TextVectorization's own; unit counts are the ids the model sees."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from training.data import ROW, RunRow
from training.model import PRESETS, Hyperparameters, build_vectorizer, tokenize, words
from training.vectorize import adapt_vectorizer, count_units

TEXTS = [
    "I did not like it, but the music was great!",
    "Not bad at all. The cast is great and the music is great too.",
    "The worst film; I didn't laugh once. Not funny, not clever.",
    "Great phone :) battery lasts two days",
    "don't buy this, it broke after a week",
    "Soooo good!!! would buy again",
    "",
    "?!",
] * 3 + ["One more text with the words great and music and film once."]


def _params(preset: str, **changes: object) -> Hyperparameters:
    return dataclasses.replace(PRESETS[preset], **changes)  # type: ignore[arg-type]


def _adapted_by_keras(params: Hyperparameters) -> list[str]:
    vectorizer = build_vectorizer(params)
    vectorizer.adapt(tf.constant(TEXTS))
    return list(vectorizer.get_vocabulary())


@pytest.mark.parametrize("preset", ["default", "tutorial"])
def test_the_streamed_vocabulary_is_what_adapt_learns(preset: str) -> None:
    params = _params(preset, max_tokens=5000)
    ours = adapt_vectorizer(params, iter(TEXTS)).get_vocabulary()
    theirs = _adapted_by_keras(params)
    assert ours[:2] == theirs[:2] == ["", "[UNK]"]
    assert sorted(ours) == sorted(theirs), "the same units when every unit fits"


def test_a_smaller_vocabulary_keeps_the_most_frequent_units() -> None:
    params = _params("default", max_tokens=12)
    ours = adapt_vectorizer(params, iter(TEXTS)).get_vocabulary()[2:]
    every = _adapted_by_keras(_params("default", max_tokens=5000))
    counted = Counter(
        unit.decode()
        for row in tf.strings.ngrams(
            words(params, tf.constant(TEXTS)), ngram_width=(1, 2, 3), separator=" "
        ).to_list()
        for unit in row
    )
    assert len(ours) == 10 and set(ours) <= set(every)
    counts = [counted[unit] for unit in ours]
    assert counts == sorted(counts, reverse=True), "most frequent first"
    assert min(counts) >= max(counted[u] for u in every[2:] if u not in ours)


@pytest.mark.parametrize("preset", ["default", "tutorial"])
def test_unit_counts_are_the_ids_the_model_sees(preset: str) -> None:
    params = _params(preset, max_tokens=300, sequence_length=12)
    vectorizer = adapt_vectorizer(params, iter(TEXTS))
    rows = [RunRow(text, i % 2, "c", "d", "train", ROW) for i, text in enumerate(TEXTS)]
    (counts,) = count_units(vectorizer, params, rows, lambda row: "all").values()
    ids = tokenize(vectorizer, params, tf.constant(TEXTS))
    ids = ids.to_list() if isinstance(ids, tf.RaggedTensor) else ids.numpy().tolist()
    for i, text_ids in enumerate(ids):
        expected = np.bincount([t for t in text_ids if t != 0], minlength=params.max_tokens)
        np.testing.assert_array_equal(counts.matrix[i].toarray()[0], expected)
    assert counts.labels.tolist() == [i % 2 for i in range(len(TEXTS))]
    if params.mask_padding:  # an empty text is one unknown unit, never zero units
        assert counts.lengths.min() >= 1 and counts.lengths.max() <= 12
