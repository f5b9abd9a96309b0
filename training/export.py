"""Export the trained model as a strings-in, probabilities-out SavedModel and verify it.

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

Publishing the verified export is `training.publish`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    TEMPERATURE_OUTPUT,
    TOKEN_COUNT_OUTPUT,
    TRUNCATED_OUTPUT,
    UNITS_OUTPUT,
    UNITS_PER_TEXT_OUTPUT,
)
from training import text as text_lib
from training.calibration import LengthTemperature
from training.model import Hyperparameters, tokenize, unit_scores
from training.text import PADDING_ID, UNKNOWN_ID
from training.units import Totals, WordNgramIds, int64_table, repeat

logger = logging.getLogger(__name__)

PADDING_UNIT = "[padding]"  # the tutorial averages its padding too; explain shows its share


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
        self._table = int64_table(
            vocabulary[2:], list(range(2, len(vocabulary))), default=UNKNOWN_ID
        )
        self._scores = tf.constant(scores[: len(vocabulary)])
        self._bias = tf.constant(bias, tf.float32)
        self._ngram_ids = (
            WordNgramIds(vocabulary, params.ngrams, self._scores) if params.ngrams > 1 else None
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
            ids = tf.concat([ids, repeat(UNKNOWN_ID, empty)], axis=1)
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

    def _totals(self, text: tf.Tensor) -> Totals:
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
        return Totals(raw_logit, count, real, all_units, tf.minimum(unknown, real))

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
        units = tf.concat([units, repeat("[UNK]", extra)], axis=1)
        if not self._masked:  # the tutorial's padding is part of its average: show its share
            padding = self._params.sequence_length - count
            has_padding = tf.cast(padding > 0, tf.int64)
            share = tf.cast(padding, tf.float32) * self._scores[PADDING_ID] / divisor
            units = tf.concat([units, repeat(PADDING_UNIT, has_padding)], axis=1)
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
