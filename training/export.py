"""Export the trained model as a strings-in, probabilities-out SavedModel and publish it atomically.

The serving graph holds the whole text pipeline, so the service needs nothing but
`tf.saved_model.load`: preprocessing cannot drift from training. It is the trained model
*folded*: with dropout off and mean pooling, logit = bias + mean over the text's units of
(embedding · dense kernel), so each vocabulary unit's scalar score is computed once here and
the graph averages scalars over the real units only (ragged: no padding is built or read).
`verify_export` proves the reloaded graph equals the Keras model to 1e-5 before anything is
published.

Signatures (names in `contract`):

* ``serving_default``: ``text`` [N] → ``probability`` [N, 1], ``logit`` [N, 1] (calibrated).
* ``score``: the same two plus ``token_count``, ``oov_count`` [N] int64 and ``truncated`` [N]
  bool, for the service's input metrics;
* ``explain``: ``text`` [N] → the units each text was scored on and their exact shares of the
  raw logit, with the accounting (see `ExplainOutputs`).

A version is built in a hidden staging directory and renamed into place only once it is complete
and verified, so a reader (the service's directory watcher, TF Serving) never sees half a model.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from contract import (
    BIAS_OUTPUT,
    CONTRIBUTIONS_OUTPUT,
    EXPLAIN_SIGNATURE_NAME,
    INPUT_NAME,
    LOGIT_OUTPUT,
    OOV_COUNT_OUTPUT,
    OOV_SHARE_OUTPUT,
    PROBABILITY_OUTPUT,
    RAW_LOGIT_OUTPUT,
    SAMPLE_TOLERANCE,
    SCORE_SIGNATURE_NAME,
    SIGNATURE_NAME,
    STAGING_PREFIX,
    TEMPERATURE_OUTPUT,
    TOKEN_COUNT_OUTPUT,
    TRUNCATED_OUTPUT,
    UNITS_OUTPUT,
    UNITS_PER_TEXT_OUTPUT,
    ModelCard,
    version_dirs,
)
from training import text as text_lib
from training.calibration import LengthTemperature
from training.model import PADDING_ID, UNKNOWN_ID, Hyperparameters, tokenize, unit_scores

logger = logging.getLogger(__name__)

PADDING_UNIT = "[padding]"  # the tutorial averages its padding too; explain shows its share
# Word numbers of the tokens that steer negation scopes (-1 is a word of no unit).
_BOUNDARY_NUMBER = -2
_MARK_NUMBER = -3


class ExportError(RuntimeError):
    """The exported SavedModel does not reproduce the trained model; nothing is published."""


@dataclass(frozen=True)
class TrainedModel:
    """Everything the serving graph is made of: the text pipeline, the model, the calibration."""

    params: Hyperparameters
    vectorizer: keras.layers.TextVectorization
    model: keras.Model
    calibration: LengthTemperature

    def reference_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities from the in-memory Keras objects: the yardstick for the export."""
        token_ids = tokenize(self.vectorizer, self.params, tf.constant(list(texts)))
        if isinstance(token_ids, tf.RaggedTensor):
            logits = self.model(token_ids.to_tensor(), training=False)
            counts = token_ids.row_lengths()[:, tf.newaxis]
        else:  # the tutorial: real (non-padding) ids
            logits = self.model(token_ids, training=False)
            counts = tf.reduce_sum(tf.cast(tf.not_equal(token_ids, PADDING_ID), tf.int64), 1)
            counts = counts[:, tf.newaxis]
        calibrated = self.calibration.apply(logits, counts)
        return np.asarray(tf.sigmoid(calibrated).numpy()[:, 0], dtype=np.float64)


class _Totals(NamedTuple):
    raw_logit: tf.Tensor  # [N] bias + mean unit score, before calibration
    count: tf.Tensor  # [N] units averaged (an empty text: its one unknown stand-in)
    real: tf.Tensor  # [N] real units scored (at most the sequence length)
    all_units: tf.Tensor  # [N] units before truncation
    unknown: tf.Tensor  # [N] out-of-vocabulary units among the real ones


class ServingGraph(tf.Module):  # type: ignore[misc]
    """The folded model with its text pipeline; the exported object."""

    def __init__(self, trained: TrainedModel) -> None:
        super().__init__(name="sentiment")
        params = trained.params
        vocabulary = trained.vectorizer.get_vocabulary()
        scores, bias = unit_scores(trained.model)
        self._params = params
        self._calibration = trained.calibration
        self._masked = params.mask_padding
        self._table = _int64_table(
            vocabulary[2:], list(range(2, len(vocabulary))), default=UNKNOWN_ID
        )
        self._scores = tf.constant(scores[: len(vocabulary)])
        self._bias = tf.constant(bias, tf.float32)
        self._ngram_ids = (
            _WordNgramIds(vocabulary, params.ngrams, self._scores) if params.ngrams > 1 else None
        )
        text_spec = tf.TensorSpec(shape=[None], dtype=tf.string, name=INPUT_NAME)
        self.serve = tf.function(self._serve, input_signature=[text_spec])
        self.score = tf.function(self._score_with_accounting, input_signature=[text_spec])
        self.explain = tf.function(self._explain, input_signature=[text_spec])

    def _units(self, text: tf.Tensor) -> tf.RaggedTensor:
        """The units the model scores, in the vectorizer's order: words, then n-grams."""
        words = self._words(text)
        if self._params.ngrams == 1:
            return words
        widths = tuple(range(1, self._params.ngrams + 1))
        return tf.strings.ngrams(words, ngram_width=widths, separator=" ")

    def _words(self, text: tf.Tensor) -> tf.RaggedTensor:
        if self._params.tokenizer == "negation":
            return text_lib.split_marking_negation(text_lib.standardize(text))
        return tf.strings.split(text_lib.standardize_tutorial(text))

    def _score(
        self, text: tf.Tensor
    ) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Per unit: ids and scores (ragged); per text: raw logit, units scored n (an empty
        text counts its one unknown stand-in), divisor of the mean, units before truncation."""
        all_ids = self._table.lookup(self._units(text))
        length = self._params.sequence_length
        ids = all_ids[:, :length]
        if self._masked:
            empty = tf.cast(tf.equal(ids.row_lengths(), 0), tf.int64)
            ids = tf.concat([ids, _repeat(UNKNOWN_ID, empty)], axis=1)
        count = ids.row_lengths()
        scores = tf.gather(self._scores, ids)
        total = tf.reduce_sum(scores, axis=1)
        if self._masked:
            divisor = tf.cast(count, tf.float32)
        else:  # the tutorial averages over every position, its padding included
            divisor = tf.fill(tf.shape(count), tf.constant(float(length)))
            total += tf.cast(length - count, tf.float32) * self._scores[PADDING_ID]
        raw_logit = self._bias + total / divisor
        return ids, scores, raw_logit, count, divisor, all_ids.row_lengths()

    def _totals(self, text: tf.Tensor) -> _Totals:
        """What serving needs per text, without materializing units where it can avoid it."""
        if self._ngram_ids is not None and self._masked:
            if self._params.tokenizer == "negation":
                numbers, rows = self._ngram_ids.numbers_marking_negation(text_lib.standardize(text))
            else:
                numbers, rows = self._ngram_ids.numbers_of_words(self._words(text))
            texts = tf.shape(text, out_type=tf.int64)[0]
            return self._ngram_ids.totals(
                numbers, rows, texts, self._bias, self._params.sequence_length
            )
        ids, _, raw_logit, count, _, all_units = self._score(text)
        real = tf.minimum(all_units, self._params.sequence_length)
        unknown = tf.reduce_sum(tf.cast(tf.equal(ids, UNKNOWN_ID), tf.int64), axis=1)
        # An empty text's unknown stand-in is not an out-of-vocabulary word.
        return _Totals(raw_logit, count, real, all_units, tf.minimum(unknown, real))

    def _serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        totals = self._totals(text)
        logit = self._calibration.apply(
            totals.raw_logit[:, tf.newaxis], totals.count[:, tf.newaxis]
        )
        return {PROBABILITY_OUTPUT: tf.sigmoid(logit), LOGIT_OUTPUT: logit}

    def _score_with_accounting(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        totals = self._totals(text)
        logit = self._calibration.apply(
            totals.raw_logit[:, tf.newaxis], totals.count[:, tf.newaxis]
        )
        return {
            PROBABILITY_OUTPUT: tf.sigmoid(logit),
            LOGIT_OUTPUT: logit,
            TOKEN_COUNT_OUTPUT: totals.real,
            OOV_COUNT_OUTPUT: totals.unknown,
            TRUNCATED_OUTPUT: totals.all_units > self._params.sequence_length,
        }

    def _explain(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        ids, scores, raw_logit, count, divisor, total_units = self._score(text)
        logit = self._calibration.apply(raw_logit[:, tf.newaxis], count[:, tf.newaxis])[:, 0]
        temperature = self._calibration.divisor(raw_logit, count)
        # The unit strings as scored; an unseen unit shows its own text (it scored as unknown).
        units = self._units(text)[:, : self._params.sequence_length]
        contributions = scores / divisor[:, tf.newaxis]
        extra = count - units.row_lengths()  # 1 where an empty text was scored as one unknown
        units = tf.concat([units, _repeat("[UNK]", extra)], axis=1)
        if not self._masked:  # the tutorial's padding is part of its average: show its share
            padding = self._params.sequence_length - count
            has_padding = tf.cast(padding > 0, tf.int64)
            share = tf.cast(padding, tf.float32) * self._scores[PADDING_ID] / divisor
            units = tf.concat([units, _repeat(PADDING_UNIT, has_padding)], axis=1)
            contributions = tf.concat(
                [
                    contributions,
                    tf.RaggedTensor.from_row_lengths(
                        tf.boolean_mask(share, padding > 0), has_padding
                    ),
                ],
                axis=1,
            )
        real = tf.minimum(total_units, self._params.sequence_length)
        unknown = tf.reduce_sum(tf.cast(tf.equal(ids, UNKNOWN_ID), tf.int64), axis=1) - extra
        return {
            UNITS_OUTPUT: units.flat_values,
            CONTRIBUTIONS_OUTPUT: contributions.flat_values,
            UNITS_PER_TEXT_OUTPUT: units.row_lengths(),
            BIAS_OUTPUT: tf.fill(tf.shape(raw_logit), self._bias),
            TOKEN_COUNT_OUTPUT: real,
            TRUNCATED_OUTPUT: total_units > self._params.sequence_length,
            OOV_COUNT_OUTPUT: unknown,
            OOV_SHARE_OUTPUT: tf.math.divide_no_nan(
                tf.cast(unknown, tf.float32), tf.cast(real, tf.float32)
            ),
            TEMPERATURE_OUTPUT: temperature,
            RAW_LOGIT_OUTPUT: raw_logit,
            LOGIT_OUTPUT: logit,
            PROBABILITY_OUTPUT: tf.sigmoid(logit),
        }


class _WordNgramIds(tf.Module):  # type: ignore[misc]
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
        self._words = _int64_table(
            [*numbers, *steering], [*numbers.values(), *steering.values()], default=-1
        )
        self._negated = _int64_table(
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
        self._grams = _int64_table(keys, [i for i, _ in grams], default=UNKNOWN_ID)

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
    ) -> _Totals:
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
        # unknown count (one sum over [units, 2] columns cost twice as much: 7.7 us per review).
        all_ids, all_rows = tf.concat(ids, axis=0), tf.concat(rows_of, axis=0)
        scores = tf.where(all_ids == PADDING_ID, 0.0, tf.gather(self._scores, all_ids))
        total = tf.math.unsorted_segment_sum(scores, all_rows, texts)
        is_unknown = tf.cast(tf.equal(all_ids, UNKNOWN_ID), tf.int32)
        unknown = tf.cast(tf.math.unsorted_segment_sum(is_unknown, all_rows, texts), tf.int64)
        real = tf.minimum(units_before, length)  # every unit up to the sequence length is kept
        empty = tf.equal(real, 0)  # scored as one unknown unit, as the vectorizer path does
        total = tf.where(empty, self._scores[UNKNOWN_ID], total)
        count = tf.maximum(real, 1)
        return _Totals(
            bias + total / tf.cast(count, tf.float32), count, real, units_before, unknown
        )


def _int64_table(keys: Sequence[str | int], values: Sequence[int], default: int) -> Any:
    """A static hash table to int64 values (string or int64 keys, by the keys' type)."""
    key_type = tf.string if keys and isinstance(keys[0], str) else tf.int64
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(keys), key_type), tf.constant(list(values), tf.int64)
        ),
        default_value=default,
    )


def _repeat(unit: str | int, counts: tf.Tensor) -> tf.RaggedTensor:
    """`counts[i]` copies of `unit` (a unit's text, or its int64 id) in row i."""
    value = tf.constant(unit, tf.int64 if isinstance(unit, int) else tf.string)
    return tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(counts)], value), counts)


def write_saved_model(trained: TrainedModel, path: Path) -> None:
    """Write the folded serving graph with its `serving_default` and `explain` signatures."""
    graph = ServingGraph(trained)
    tf.saved_model.save(
        graph,
        str(path),
        signatures={
            SIGNATURE_NAME: graph.serve,
            SCORE_SIGNATURE_NAME: graph.score,
            EXPLAIN_SIGNATURE_NAME: graph.explain,
        },
    )


def load_scorer(path: Path, chunk: int = 2048) -> Callable[[Sequence[str]], np.ndarray]:
    """P(positive) exactly as the service computes it: the reloaded `serving_default`, called
    on chunks of `chunk` texts (a padded v1/v2 graph would hold every text's padding at once)."""
    serve = tf.saved_model.load(str(path)).signatures[SIGNATURE_NAME]

    def probabilities(texts: Sequence[str]) -> np.ndarray:
        parts = [
            serve(**{INPUT_NAME: tf.constant(list(texts[start : start + chunk]), tf.string)})
            for start in range(0, max(len(texts), 1), chunk)
        ]
        return np.concatenate(
            [np.asarray(part[PROBABILITY_OUTPUT].numpy()[:, 0], np.float64) for part in parts]
        )

    return probabilities


def served_probabilities(path: Path, texts: Sequence[str]) -> np.ndarray:
    """Reload the export at `path` and score `texts` with it."""
    return load_scorer(path)(texts)


def verify_export(path: Path, texts: Sequence[str], expected: np.ndarray) -> np.ndarray:
    """Reload the export and demand it agrees with the Keras model; returns the served values."""
    served = served_probabilities(path, texts)
    worst = float(np.max(np.abs(served - expected)))
    if not worst <= SAMPLE_TOLERANCE:
        raise ExportError(f"reloaded SavedModel differs from the Keras model by {worst:.2e}")
    logger.info("Export verified: max |served - keras| = %.2e on %d texts", worst, len(texts))
    return served


def existing_versions(base_dir: Path) -> list[int]:
    return [version for version, _ in version_dirs(base_dir)]


def create_staging_dir(base_dir: Path) -> Path:
    """A hidden directory beside the versions: same filesystem, so the final rename is atomic."""
    base_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base_dir))
    # mkdtemp makes it private (0700); a published version must be readable by a service
    # running as another user (a shared volume in compose or Kubernetes).
    staging.chmod(0o755)
    return staging


def publish(staging: Path, base_dir: Path, card: ModelCard) -> Path:
    """Write the model card (with its version number) and rename `staging` to the next version.

    The rename is the single moment of publication; before it no integer directory exists.
    """
    version = max(existing_versions(base_dir), default=0) + 1
    card.model_copy(update={"version": version}).write(staging)
    target = base_dir / str(version)
    if target.exists():  # a concurrent publisher won the race; never overwrite a version
        raise ExportError(f"{target} appeared while publishing; retry to take the next version")
    staging.rename(target)
    logger.info("Published %s", target)
    return target


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
