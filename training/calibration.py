"""Probability calibration fitted on validation data and baked into the serving graph.

A mean-pooled bag of words has a length problem: the average of three token embeddings is far
larger in magnitude than the average of three hundred, so a temperature fitted on long reviews
leaves short texts at 0.000 / 1.000. `LengthTemperature` divides the logit by
T(n) = a + b / sqrt(n), n being the number of real tokens, so a served probability means the same
for a three-word text as for a long review. a = 1, b = 0 is the identity; b = 0 is plain
temperature scaling.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf
from scipy.optimize import minimize  # type: ignore[import-untyped]

ECE_BINS = 15
_MIN_TEMPERATURE = 0.05


@dataclass(frozen=True)
class LengthTemperature:
    """T(n) = a + b / sqrt(n): the divisor of the logit for a text with n real tokens."""

    a: float = 1.0
    b: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def apply(self, logits: tf.Tensor, token_counts: tf.Tensor) -> tf.Tensor:
        """The calibrated logits, in TensorFlow ops so the same code runs inside the export."""
        if self.b == 0.0:  # keep plain temperature (and the identity) exactly as before
            return logits / self.a
        counts = tf.maximum(tf.cast(token_counts, logits.dtype), 1.0)
        temperature = tf.maximum(self.a + self.b / tf.sqrt(counts), _MIN_TEMPERATURE)
        return logits / temperature

    def temperature(self, token_count: float) -> float:
        """T(n) for a text of `token_count` real tokens, as `apply` uses it."""
        if self.b == 0.0:
            return self.a
        return max(self.a + self.b / math.sqrt(max(token_count, 1.0)), _MIN_TEMPERATURE)

    def apply_numpy(self, logits: np.ndarray, token_counts: np.ndarray) -> np.ndarray:
        return np.asarray(
            self.apply(tf.constant(logits, tf.float32), tf.constant(token_counts)).numpy()
        )


def token_counts(token_ids: tf.Tensor) -> tf.Tensor:
    """Real (non-padding) tokens per row of a padded id matrix: [N, L] → [N, 1]."""
    return tf.reduce_sum(tf.cast(tf.not_equal(token_ids, 0), tf.float32), axis=1, keepdims=True)


def binary_nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of 0/1 labels under sigmoid(logits), computed stably."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE of the predicted class: sum over bins of |accuracy - confidence| x the bin's share.

    Confidence is max(p, 1 - p), binned into `bins` equal-width bins over [0, 1] as in Guo et
    al. 2017 (the usual "ECE, 15 bins"); a binary classifier only fills the bins above 0.5.
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    confidence = np.maximum(p, 1.0 - p)
    correct = (p >= 0.5) == (y == 1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> LengthTemperature:
    """One temperature minimising validation NLL (searched on log T, so T stays positive)."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)

    def loss(log_t: np.ndarray) -> float:
        return binary_nll(z / np.exp(log_t[0]), labels)

    result = minimize(loss, x0=np.zeros(1), method="Nelder-Mead")
    return LengthTemperature(a=float(np.exp(result.x[0])), b=0.0)


def fit_length_temperature(
    logits: np.ndarray, labels: np.ndarray, counts: np.ndarray
) -> LengthTemperature:
    """a and b of T(n) = a + b / sqrt(n) minimising NLL; start from the best single temperature."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    inverse_sqrt = 1.0 / np.sqrt(np.maximum(np.asarray(counts, dtype=np.float64).reshape(-1), 1.0))
    start = fit_temperature(z, labels).a

    def loss(ab: np.ndarray) -> float:
        temperature = np.maximum(ab[0] + ab[1] * inverse_sqrt, _MIN_TEMPERATURE)
        return binary_nll(z / temperature, labels)

    result = minimize(loss, x0=np.array([start, 0.0]), method="Nelder-Mead")
    a, b = (float(v) for v in result.x)
    return LengthTemperature(a=a, b=b)
