"""Export the trained model as a strings-in, probabilities-out SavedModel and verify it.

The serving graph holds the whole text pipeline, so the service needs nothing but
`tf.saved_model.load`: preprocessing cannot drift from training. It is the trained model
*folded*: with dropout off and mean pooling, logit = bias + mean over the text's units of
(embedding · dense kernel), so each vocabulary unit's scalar score is computed once here and
the graph averages scalars over the real units only (no padding is built or read).

Signatures (names in `contract`), all three on the same units (`training.units.TextUnits`):

* ``serving_default``: ``text`` [N] → ``probability`` [N, 1], ``logit`` [N, 1] (calibrated).
* ``score``: the same two plus ``token_count``, ``oov_count`` [N] int64 and ``truncated`` [N]
  bool, for the service's input metrics;
* ``explain``: ``text`` [N] → the units each text was scored on and their exact shares of the
  raw logit, with the accounting.

`verify_export` reloads the SavedModel and compares every signature with the Keras model before
anything is published (`training.publish`).
"""

from __future__ import annotations

import logging
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
    TEMPERATURE_OUTPUT,
    TOKEN_COUNT_OUTPUT,
    TRUNCATED_OUTPUT,
    UNITS_OUTPUT,
    UNITS_PER_TEXT_OUTPUT,
)
from training.calibration import LengthTemperature
from training.model import Hyperparameters, tokenize, unit_scores
from training.text import PADDING_ID, UNKNOWN_ID
from training.units import TextUnits, Units

logger = logging.getLogger(__name__)

PADDING_UNIT = "[padding]"  # the tutorial averages its padding too; explain shows its share
SCORING_CHUNK = 2048
# A raw logit is a float32 sum over up to `sequence_length` units, in the graph's order: it may
# differ from the Keras model's by this many of its own magnitude (the probability may not).
RAW_LOGIT_RELATIVE_TOLERANCE = 1e-5


class ExportError(RuntimeError):
    """The exported SavedModel does not reproduce the trained model; nothing is published."""


@dataclass(frozen=True)
class Reference:
    """The Keras model's answers for some texts: what every exported signature must give."""

    probabilities: np.ndarray  # calibrated, served
    raw_logits: np.ndarray  # before calibration
    units_explained: np.ndarray  # units averaged, and the tutorial's padding as one more


@dataclass(frozen=True)
class TrainedModel:
    """Everything the serving graph is made of: the text pipeline, the model, the calibration."""

    params: Hyperparameters
    vectorizer: keras.layers.TextVectorization
    model: keras.Model
    calibration: LengthTemperature

    def reference(self, texts: Sequence[str]) -> Reference:
        """The in-memory Keras objects' answers: the yardstick for the export."""
        token_ids = tokenize(self.vectorizer, self.params, tf.constant(list(texts)))
        if isinstance(token_ids, tf.RaggedTensor):
            logits = self.model(token_ids.to_tensor(), training=False)
            counts = token_ids.row_lengths()
            explained = counts.numpy()
        else:  # the tutorial: real (non-padding) ids, and its padding shown as one unit
            logits = self.model(token_ids, training=False)
            counts = tf.reduce_sum(tf.cast(tf.not_equal(token_ids, PADDING_ID), tf.int64), 1)
            explained = counts.numpy() + (counts.numpy() < self.params.sequence_length)
        calibrated = self.calibration.apply(logits, counts[:, tf.newaxis])
        return Reference(
            np.asarray(tf.sigmoid(calibrated).numpy()[:, 0], dtype=np.float64),
            np.asarray(logits.numpy()[:, 0], dtype=np.float64),
            np.asarray(explained, np.int64),
        )

    def reference_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return self.reference(texts).probabilities


class Pooled(NamedTuple):
    """Per text: the mean pooled over its kept units, and the accounting."""

    raw_logit: tf.Tensor  # [N] bias + mean unit score, before calibration
    count: tf.Tensor  # [N] units averaged (an empty text: its one unknown stand-in)
    divisor: tf.Tensor  # [N] what the sum is divided by (the tutorial: the sequence length)
    real: tf.Tensor  # [N] real units scored (at most the sequence length)
    truncated: tf.Tensor  # [N] units beyond the sequence length were dropped


class ServingGraph(tf.Module):  # type: ignore[misc]
    """The folded model with its text pipeline; the exported object."""

    def __init__(self, trained: TrainedModel) -> None:
        super().__init__(name="sentiment")
        params = trained.params
        vocabulary = trained.vectorizer.get_vocabulary()
        scores, bias = unit_scores(trained.model)
        self._length = params.sequence_length
        self._ngrams = params.ngrams
        self._masked = params.mask_padding
        self._calibration = trained.calibration
        self._bias = tf.constant(bias, tf.float32)
        self._unknown_unit = vocabulary[UNKNOWN_ID]
        self._unknown_score = tf.constant(scores[UNKNOWN_ID], tf.float32)
        self._padding_score = tf.constant(scores[PADDING_ID], tf.float32)
        self._units = TextUnits(
            vocabulary,
            scores[: len(vocabulary)],
            params.tokenizer,
            params.ngrams,
            params.sequence_length,
        )
        text_spec = tf.TensorSpec(shape=[None], dtype=tf.string, name=INPUT_NAME)
        self.serve = tf.function(self._serve, input_signature=[text_spec])
        self.score = tf.function(self._score, input_signature=[text_spec])
        self.explain = tf.function(self._explain, input_signature=[text_spec])

    def _pool(self, units: Units, texts: tf.Tensor) -> tuple[Pooled, tf.Tensor]:
        """Each text's mean, and its unknown units' count."""
        with tf.name_scope("pooling"):
            # Every unit starting at a word, summed first: one segment sum over the words.
            score = tf.add_n(tf.unstack(units.scores, self._ngrams))
            unknown = tf.add_n(tf.unstack(tf.cast(units.unknown, tf.int32), self._ngrams))
            total = _per_text(score, units.rows, texts)
            unknown = tf.cast(_per_text(unknown, units.rows, texts), tf.int64)
            real = tf.minimum(units.units_per_text, self._length)
            if self._masked:  # an empty text is scored as one unknown unit: no evidence
                empty = tf.equal(real, 0)
                total = tf.where(empty, self._unknown_score, total)
                count = tf.maximum(real, 1)
                divisor = tf.cast(count, tf.float32)
            else:  # the tutorial averages over every position, its padding included
                count = real
                divisor = tf.fill(tf.shape(real), tf.constant(float(self._length)))
                total += tf.cast(self._length - real, tf.float32) * self._padding_score
            raw_logit = self._bias + total / divisor
            truncated = units.units_per_text > self._length
            return Pooled(raw_logit, count, divisor, real, truncated), unknown

    def _calibrated(self, pooled: Pooled) -> tf.Tensor:
        with tf.name_scope("calibration"):
            return self._calibration.apply(
                pooled.raw_logit[:, tf.newaxis], pooled.count[:, tf.newaxis]
            )

    def _serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        texts = tf.shape(text, out_type=tf.int64)[0]
        pooled, _ = self._pool(self._units.units(text), texts)
        logit = self._calibrated(pooled)
        return {PROBABILITY_OUTPUT: tf.sigmoid(logit), LOGIT_OUTPUT: logit}

    def _score(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        texts = tf.shape(text, out_type=tf.int64)[0]
        pooled, unknown = self._pool(self._units.units(text), texts)
        logit = self._calibrated(pooled)
        return {
            PROBABILITY_OUTPUT: tf.sigmoid(logit),
            LOGIT_OUTPUT: logit,
            TOKEN_COUNT_OUTPUT: pooled.real,
            OOV_COUNT_OUTPUT: unknown,
            TRUNCATED_OUTPUT: pooled.truncated,
        }

    def _explain(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        texts = tf.shape(text, out_type=tf.int64)[0]
        units = self._units.units(text)
        pooled, unknown = self._pool(units, texts)
        logit = self._calibrated(pooled)[:, 0]
        # The kept units of each text in the vectorizer's order: words, then pairs, ...
        kept = tf.where(units.kept)  # [units, (width - 1, word)], by width then word
        rows = tf.gather(units.rows, kept[:, 1])
        order = tf.argsort(rows, stable=True)
        kept, rows = tf.gather(kept, order), tf.gather(rows, order)
        with tf.name_scope("names"):
            names = tf.RaggedTensor.from_value_rowids(
                tf.gather_nd(self._units.unit_names(units), kept), rows, nrows=texts
            )
        shares = tf.RaggedTensor.from_value_rowids(
            tf.gather_nd(units.scores, kept) / tf.gather(pooled.divisor, rows), rows, nrows=texts
        )
        if self._masked:  # an empty text shows the unknown unit it was scored as
            empty = tf.cast(tf.equal(pooled.real, 0), tf.int64)
            names = tf.concat([names, _repeat(self._unknown_unit, empty)], axis=1)
            share = self._unknown_score / pooled.divisor
            shares = tf.concat([shares, _ragged(share, empty)], axis=1)
        else:  # the tutorial's padding is part of its average: show its share
            padding = self._length - pooled.real
            has_padding = tf.cast(padding > 0, tf.int64)
            names = tf.concat([names, _repeat(PADDING_UNIT, has_padding)], axis=1)
            share = tf.cast(padding, tf.float32) * self._padding_score / pooled.divisor
            shares = tf.concat([shares, _ragged(share, has_padding)], axis=1)
        return {
            UNITS_OUTPUT: names.flat_values,
            CONTRIBUTIONS_OUTPUT: shares.flat_values,
            UNITS_PER_TEXT_OUTPUT: names.row_lengths(),
            BIAS_OUTPUT: tf.fill(tf.shape(pooled.raw_logit), self._bias),
            TOKEN_COUNT_OUTPUT: pooled.real,
            TRUNCATED_OUTPUT: pooled.truncated,
            OOV_COUNT_OUTPUT: unknown,
            OOV_SHARE_OUTPUT: tf.math.divide_no_nan(
                tf.cast(unknown, tf.float32), tf.cast(pooled.real, tf.float32)
            ),
            TEMPERATURE_OUTPUT: self._calibration.divisor(pooled.raw_logit, pooled.count),
            RAW_LOGIT_OUTPUT: pooled.raw_logit,
            LOGIT_OUTPUT: logit,
            PROBABILITY_OUTPUT: tf.sigmoid(logit),
        }


def _per_text(values: tf.Tensor, rows: tf.Tensor, texts: tf.Tensor) -> tf.Tensor:
    """Each text's sum of `values` [words]; `rows` sorted, so the sorted segment sum does."""
    sums = tf.math.segment_sum(values, rows)  # up to the last text with a word
    return tf.pad(sums, [[0, texts - tf.size(sums, out_type=tf.int64)]])


def _repeat(unit: str, counts: tf.Tensor) -> tf.RaggedTensor:
    """`counts[i]` (0 or 1) copies of `unit` in row i."""
    return tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(counts)], unit), counts)


def _ragged(values: tf.Tensor, counts: tf.Tensor) -> tf.RaggedTensor:
    """Row i holds `values[i]` if `counts[i]` is 1, nothing if it is 0."""
    return tf.RaggedTensor.from_row_lengths(tf.boolean_mask(values, counts > 0), counts)


def write_saved_model(trained: TrainedModel, path: Path) -> None:
    """Write the folded serving graph with its `serving_default`, `score` and `explain`."""
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


def load_scorer(path: Path, chunk: int = SCORING_CHUNK) -> Callable[[Sequence[str]], np.ndarray]:
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


def _require(ok: bool | np.bool_, signature: str, what: str) -> None:
    if not ok:
        raise ExportError(f"reloaded SavedModel: `{signature}` {what}")


def _check_probabilities(signature: str, served: np.ndarray, expected: np.ndarray) -> float:
    worst = float(np.max(np.abs(served - expected), initial=0.0))
    _require(worst <= SAMPLE_TOLERANCE, signature, f"differs from the Keras model by {worst:.2e}")
    return worst


def verify_export(path: Path, texts: Sequence[str], reference: Reference) -> np.ndarray:
    """Reload the export at `path` and `check_signatures`; returns the served probabilities."""
    return check_signatures(tf.saved_model.load(str(path)).signatures, texts, reference)


def check_signatures(signatures: Any, texts: Sequence[str], reference: Reference) -> np.ndarray:
    """Demand that every signature of a reloaded export agrees with the Keras model on `texts`.

    `serving_default` and `score`: the same probabilities within `SAMPLE_TOLERANCE`, the logit
    the probability's; `score`'s accounting equal to `explain`'s. `explain`: the raw logit the
    Keras model's, the bias plus the units' shares that raw logit, the calibrated logit and its
    probability the served ones, one unit per unit the model averaged. Returns the served values.
    """
    batch = {INPUT_NAME: tf.constant(list(texts), tf.string)}
    outputs = {
        name: {key: value.numpy() for key, value in signatures[name](**batch).items()}
        for name in (SIGNATURE_NAME, SCORE_SIGNATURE_NAME, EXPLAIN_SIGNATURE_NAME)
    }
    served = np.asarray(outputs[SIGNATURE_NAME][PROBABILITY_OUTPUT][:, 0], np.float64)
    served_logit = outputs[SIGNATURE_NAME][LOGIT_OUTPUT][:, 0]
    worst = 0.0
    for name in (SIGNATURE_NAME, SCORE_SIGNATURE_NAME):
        probability = outputs[name][PROBABILITY_OUTPUT][:, 0].astype(np.float64)
        worst = max(worst, _check_probabilities(name, probability, reference.probabilities))
        logit = outputs[name][LOGIT_OUTPUT][:, 0].astype(np.float64)
        _require(
            np.allclose(1 / (1 + np.exp(-logit)), probability, atol=SAMPLE_TOLERANCE),
            name,
            "returns a logit that is not its probability's",
        )
    explained = outputs[EXPLAIN_SIGNATURE_NAME]
    _check_probabilities(EXPLAIN_SIGNATURE_NAME, explained[PROBABILITY_OUTPUT], served)
    raw = explained[RAW_LOGIT_OUTPUT].astype(np.float64)
    scale = np.maximum(1.0, np.abs(reference.raw_logits))
    _require(
        np.all(np.abs(raw - reference.raw_logits) <= RAW_LOGIT_RELATIVE_TOLERANCE * scale),
        EXPLAIN_SIGNATURE_NAME,
        "returns raw logits that are not the Keras model's",
    )
    per_text = explained[UNITS_PER_TEXT_OUTPUT]
    sums = np.add.reduceat(
        np.append(explained[CONTRIBUTIONS_OUTPUT].astype(np.float64), 0.0),
        np.concatenate([[0], np.cumsum(per_text)[:-1]]),
    )
    sums[per_text == 0] = 0.0
    _require(
        np.all(np.abs(explained[BIAS_OUTPUT] + sums - raw) <= RAW_LOGIT_RELATIVE_TOLERANCE * scale),
        EXPLAIN_SIGNATURE_NAME,
        "returns shares that do not add up to the raw logit",
    )
    _require(
        np.allclose(
            raw / explained[TEMPERATURE_OUTPUT], explained[LOGIT_OUTPUT], rtol=1e-5, atol=1e-6
        ),
        EXPLAIN_SIGNATURE_NAME,
        "returns a logit that is not its raw logit over its temperature",
    )
    _require(
        np.allclose(explained[LOGIT_OUTPUT], served_logit, rtol=1e-6, atol=1e-6),
        EXPLAIN_SIGNATURE_NAME,
        f"returns another logit than `{SIGNATURE_NAME}`",
    )
    _require(
        np.array_equal(per_text, reference.units_explained),
        EXPLAIN_SIGNATURE_NAME,
        "explains another number of units than the Keras model averaged",
    )
    scored = outputs[SCORE_SIGNATURE_NAME]
    for output in (TOKEN_COUNT_OUTPUT, OOV_COUNT_OUTPUT, TRUNCATED_OUTPUT):
        _require(
            np.array_equal(scored[output], explained[output]),
            SCORE_SIGNATURE_NAME,
            f"and `explain` disagree on {output}",
        )
    logger.info(
        "Export verified: every signature; max |served - keras| = %.2e on %d texts",
        worst,
        len(texts),
    )
    return served
