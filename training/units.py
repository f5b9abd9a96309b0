"""Text to vocabulary ids inside the serving graph, without building unit strings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import tensorflow as tf

from training import text as text_lib
from training.text import PADDING_ID, UNKNOWN_ID

# Word numbers of the tokens that steer negation scopes (-1 is a word of no unit).
_BOUNDARY_NUMBER = -2
_MARK_NUMBER = -3


class Totals(NamedTuple):
    raw_logit: tf.Tensor  # [N] bias + mean unit score, before calibration
    count: tf.Tensor  # [N] units averaged (an empty text: its one unknown stand-in)
    real: tf.Tensor  # [N] real units scored (at most the sequence length)
    all_units: tf.Tensor  # [N] units before truncation
    unknown: tf.Tensor  # [N] out-of-vocabulary units among the real ones


class WordNgramIds(tf.Module):  # type: ignore[misc]
    """Word and word n-gram vocabulary ids from one string lookup per word.

    Every word that appears in the vocabulary, alone or inside an n-gram, gets a word number
    (the vocabulary's own id for words that are units themselves); an n-gram's id is then an
    integer lookup of its word numbers folded into one key, so no n-gram string is ever built.
    Words of no vocabulary unit get -1, and any n-gram containing one is unknown, as its
    string would be. Keys of different widths cannot collide: every word number is at least 2,
    so a k-word key is at least 2 x stride^(k-1), above every shorter key.

    Negation scopes are applied to numbers too: a word in a scope takes the number of its
    ``NOT_`` form from an integer table, so the marked strings are never built either. The
    clause boundaries and negator marks that steer the scopes get numbers of their own, so
    finding them compares numbers, not strings.
    """

    def __init__(self, vocabulary: list[str], ngrams: int, scores: tf.Tensor) -> None:
        super().__init__(name="word_ngrams")
        self._scores = scores  # the serving graph's own: one copy in the SavedModel
        numbers = {unit: i for i, unit in enumerate(vocabulary) if i >= 2 and " " not in unit}
        steering = {text_lib.CLAUSE_BOUNDARY: _BOUNDARY_NUMBER, text_lib.NEGATOR_MARK: _MARK_NUMBER}
        if any(token in numbers for token in steering):
            raise ValueError("a clause boundary or negator mark is a vocabulary unit")
        grams = [(i, unit.split(" ")) for i, unit in enumerate(vocabulary) if " " in unit]
        for _, words in grams:
            for word in words:
                numbers.setdefault(word, len(vocabulary) + len(numbers))
        prefix = text_lib.NEGATION_PREFIX
        negated = [word for word in numbers if word.startswith(prefix)]
        for word in negated:  # "NOT_x" may be a unit while "x" is not: "x" needs a number too
            numbers.setdefault(word[len(prefix) :], len(vocabulary) + len(numbers))
        self._ngrams = ngrams
        self._stride = len(vocabulary) + len(numbers)
        if self._stride**ngrams >= 2**63:
            raise ValueError(f"{ngrams}-word keys overflow int64 with {self._stride} words")
        self._unit_words = len(vocabulary)
        self._words = int64_table(
            [*numbers, *steering], [*numbers.values(), *steering.values()], default=-1
        )
        self._negated = int64_table(
            [numbers[word[len(prefix) :]] for word in negated],
            [numbers[word] for word in negated],
            default=-1,
        )
        keys = []
        for _, words in grams:
            key = 0
            for word in words:
                key = key * self._stride + numbers[word]
            keys.append(key)
        self._grams = int64_table(keys, [i for i, _ in grams], default=UNKNOWN_ID)

    def numbers_of_words(self, words: tf.RaggedTensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Word numbers of a batch of word lists, flat, with each one's text (row)."""
        return self._words.lookup(words.flat_values), words.value_rowids()

    def numbers_marking_negation(self, standardized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """`numbers_of_words(text.split_marking_negation(standardized))`, without the strings."""
        tokens = tf.strings.split(standardized)
        numbers = self._words.lookup(tokens.flat_values)
        negated, steering = text_lib.negation_scopes(
            tokens, tf.equal(numbers, _BOUNDARY_NUMBER), tf.equal(numbers, _MARK_NUMBER)
        )
        scoped = tf.where(negated)
        numbers = tf.tensor_scatter_nd_update(
            numbers, scoped, self._negated.lookup(tf.gather_nd(numbers, scoped))
        )
        keep = ~steering
        return tf.boolean_mask(numbers, keep), tf.boolean_mask(tokens.value_rowids(), keep)

    def totals(
        self, numbers: tf.Tensor, rows: tf.Tensor, texts: tf.Tensor, bias: tf.Tensor, length: int
    ) -> Totals:
        """The masked mean over the first `length` units (words, then pairs, ...) of each text.

        Works on the flat word numbers of the whole batch (`rows`: each one's text, in order):
        an n-gram is n neighbours of one text, and position checks replace the vectorizer's
        truncation, so no per-text unit list is ever built.
        """
        word_count = tf.math.unsorted_segment_sum(tf.ones_like(rows), rows, texts)
        row_starts = tf.cumsum(word_count, exclusive=True)
        position = tf.range(tf.size(numbers, out_type=tf.int64)) - tf.gather(row_starts, rows)
        word_ids = tf.where(
            (numbers >= 0) & (numbers < self._unit_words),
            numbers,
            tf.constant(UNKNOWN_ID, tf.int64),
        )
        # The vectorizer lists all words, then all pairs, then all triples...: a k-word unit's
        # place in that list is the count of shorter units before it plus its word position.
        # Units past the sequence length become padding, which scores nothing.
        ids = [tf.where(position < length, word_ids, PADDING_ID)]
        rows_of = [rows]
        units_before = word_count
        keys = numbers
        for width in range(2, self._ngrams + 1):
            start_rows = rows[: 1 - width]
            same_text = tf.equal(start_rows, rows[width - 1 :])
            valid = same_text & (keys[:-1] >= 0) & (numbers[width - 1 :] >= 0)
            keys = tf.where(valid, keys[:-1] * self._stride + numbers[width - 1 :], -1)
            keep = same_text & (
                position[: 1 - width] < length - tf.gather(units_before, start_rows)
            )
            ids.append(tf.where(keep, self._grams.lookup(keys), PADDING_ID))
            rows_of.append(start_rows)
            units_before = units_before + tf.maximum(word_count - width + 1, 0)
        # One gather and two one-dimensional sums per batch give each text's score total and
        # unknown count (one sum over [units, 2] columns cost more than the two).
        all_ids, all_rows = tf.concat(ids, axis=0), tf.concat(rows_of, axis=0)
        scores = tf.where(all_ids == PADDING_ID, 0.0, tf.gather(self._scores, all_ids))
        total = tf.math.unsorted_segment_sum(scores, all_rows, texts)
        is_unknown = tf.cast(tf.equal(all_ids, UNKNOWN_ID), tf.int32)
        unknown = tf.cast(tf.math.unsorted_segment_sum(is_unknown, all_rows, texts), tf.int64)
        real = tf.minimum(units_before, length)  # every unit up to the sequence length is kept
        empty = tf.equal(real, 0)  # scored as one unknown unit, as the vectorizer path does
        total = tf.where(empty, self._scores[UNKNOWN_ID], total)
        count = tf.maximum(real, 1)
        return Totals(bias + total / tf.cast(count, tf.float32), count, real, units_before, unknown)


def int64_table(keys: Sequence[str | int], values: Sequence[int], default: int) -> Any:
    """A static hash table to int64 values (string or int64 keys, by the keys' type)."""
    key_type = tf.string if keys and isinstance(keys[0], str) else tf.int64
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(keys), key_type), tf.constant(list(values), tf.int64)
        ),
        default_value=default,
    )


def repeat(unit: str | int, counts: tf.Tensor) -> tf.RaggedTensor:
    """`counts[i]` copies of `unit` (a unit's text, or its int64 id) in row i."""
    value = tf.constant(unit, tf.int64 if isinstance(unit, int) else tf.string)
    return tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(counts)], value), counts)
