"""Probability calibration fitted on validation data and baked into the serving graph.

A mean-pooled bag of words has a length problem: the average of three token scores is far larger
in magnitude than the average of three hundred, so a temperature fitted on long reviews leaves
short texts at 0.000 / 1.000. `LengthTemperature` divides the logit by T(n) = a + b / n^p,
n being the number of real tokens, so a served probability means the same for a three-word text
as for a long review (p = 1/2 suits a model trained on means; p = 1 a linear model's sum of
evidence, which grows with n). a > 0, b >= 0 and 0 <= p <= 2 are enforced, so T(n) > 0 for
every n the graph can produce, whatever the sequence length. a = 1, b = 0 is the identity.

`fit(method, ...)` is the one entry point training uses.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf
from scipy.optimize import minimize  # type: ignore[import-untyped]

ECE_BINS = 15
_MIN_A = 1e-3  # keeps T(n) away from zero even for the longest texts
_MAX_P = 2.0


@dataclass(frozen=True)
class LengthTemperature:
    """T(n) = a + b / n^p: the divisor of the logit for a text with n real tokens."""

    a: float = 1.0
    b: float = 0.0
    p: float = 0.5

    def __post_init__(self) -> None:
        if not (self.a > 0 and self.b >= 0 and 0 <= self.p <= _MAX_P):
            raise ValueError(f"T(n) must stay positive: a > 0, b >= 0, 0 <= p <= 2; got {self}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def apply(self, logits: tf.Tensor, token_counts: tf.Tensor) -> tf.Tensor:
        """The calibrated logits, in TensorFlow ops so the same code runs inside the export."""
        counts = tf.maximum(tf.cast(token_counts, logits.dtype), 1.0)
        return logits / (self.a + self.b * tf.pow(counts, -self.p))

    def temperature(self, token_count: float) -> float:
        """T(n) for a text of `token_count` real tokens, as `apply` uses it."""
        return float(self.a + self.b * math.pow(max(token_count, 1.0), -self.p))

    def apply_numpy(self, logits: np.ndarray, token_counts: np.ndarray) -> np.ndarray:
        counts = np.maximum(np.asarray(token_counts, dtype=np.float64).reshape(-1), 1.0)
        z = np.asarray(logits, dtype=np.float64).reshape(-1)
        return np.asarray(z / (self.a + self.b * counts**-self.p))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64))))


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


def fit(
    method: str, logits: np.ndarray, labels: np.ndarray, token_counts: np.ndarray
) -> LengthTemperature:
    """The calibration `method` ("none", "temperature", "length") minimising validation NLL."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    if method == "none":
        return LengthTemperature()
    if method == "temperature":
        return _fit_temperature(z, labels)
    if method == "length":
        return _fit_length_temperature(z, labels, token_counts)
    raise ValueError(f"unknown calibration method {method!r}")


def _fit_temperature(z: np.ndarray, labels: np.ndarray) -> LengthTemperature:
    """One temperature, searched on log T so it stays positive."""
    result = minimize(
        lambda log_t: binary_nll(z / np.exp(log_t[0]), labels), x0=np.zeros(1), method="Nelder-Mead"
    )
    return LengthTemperature(a=float(np.exp(result.x[0])), b=0.0)


def _fit_length_temperature(
    z: np.ndarray, labels: np.ndarray, token_counts: np.ndarray
) -> LengthTemperature:
    """a, b, p of T(n) = a + b / n^p, searched as a = _MIN_A + e^u, b = e^v, p = 2 sigmoid(w)."""
    log_counts = np.log(np.maximum(np.asarray(token_counts, np.float64).reshape(-1), 1.0))
    start = _fit_temperature(z, labels).a

    def unpack(uvw: np.ndarray) -> tuple[float, float, float]:
        return (
            _MIN_A + float(np.exp(uvw[0])),
            float(np.exp(uvw[1])),
            _MAX_P / (1.0 + math.exp(-float(uvw[2]))),
        )

    def loss(uvw: np.ndarray) -> float:
        a, b, p = unpack(uvw)
        return binary_nll(z / (a + b * np.exp(-p * log_counts)), labels)

    log_start = math.log(start)
    starts = [np.array([log_start, log_start, w]) for w in (-1.1, 0.0, 1.1)] + [
        np.array([log_start, -5.0, 0.0])
    ]
    best = min(
        (minimize(loss, x0=x0, method="Nelder-Mead", options={"maxiter": 2000}) for x0 in starts),
        key=lambda r: r.fun,
    )
    a, b, p = unpack(best.x)
    return LengthTemperature(a=a, b=b, p=p)
