"""Probability calibration fitted on validation data and baked into the serving graph.

A mean-pooled bag of words has a length problem: the average of three token scores is far larger
in magnitude than the average of three hundred, so a temperature fitted on long reviews leaves
short texts at 0.000 / 1.000. `LengthTemperature` divides the logit by T(n) = a + b / n^p,
n being the number of real tokens, so a served probability means the same for a three-word text
as for a long review (p = 1/2 suits a model trained on means; p = 1 a linear model's sum of
evidence, which grows with n). a > 0, b >= 0 and 0 <= p <= 2 are enforced, so T(n) > 0 for
every n the graph can produce, whatever the sequence length. a = 1, b = 0 is the identity.

A temperature only rescales. On short texts the model is also mis-shaped: under-confident near
0.5 and over-confident at the extremes of the validation snippets, because a sentence's
strongest words are also the likeliest to come from a review of the other label. The
"length_power" method bends the scaled logit u = z / T(n) to sign(u) |u|^g with 0 < g <= 1:
monotone, so decisions never change, and g = 1 is the plain temperature. It more than halved
the snippets' ECE without costing the reviews' (docs/model.md, "Calibration").

`fit(method, ...)` is the one entry point training uses. Its `sample_weight` lets a run on
several domains fit one calibration that holds on each of them: with every domain weighted
equally, IMDB's long reviews do not decide how short tweets are calibrated.
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


FORMULA = (
    "probability = sigmoid(sign(u) |u|^g), u = logit_raw / T(n), T(n) = a + b / n^p, "
    "a > 0, b >= 0, 0 <= p <= 2, 0 < g <= 1 (g = power), n = real units (words and n-grams) scored"
)


@dataclass(frozen=True)
class LengthTemperature:
    """T(n) = a + b / n^p: the divisor of the logit for a text with n real tokens; then the
    scaled logit u is bent to sign(u) |u|^power (power 1: a plain temperature)."""

    a: float = 1.0
    b: float = 0.0
    p: float = 0.5
    power: float = 1.0

    def __post_init__(self) -> None:
        if not (self.a > 0 and self.b >= 0 and 0 <= self.p <= _MAX_P):
            raise ValueError(f"T(n) must stay positive: a > 0, b >= 0, 0 <= p <= 2; got {self}")
        if not 0 < self.power <= 1:
            raise ValueError(f"the power must keep calibration monotone: 0 < g <= 1; got {self}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def _temperature_tensor(self, token_counts: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
        counts = tf.maximum(tf.cast(token_counts, dtype), 1.0)
        return self.a + self.b * tf.pow(counts, -self.p)

    def apply(self, logits: tf.Tensor, token_counts: tf.Tensor) -> tf.Tensor:
        """The calibrated logits, in TensorFlow ops so the same code runs inside the export."""
        scaled = logits / self._temperature_tensor(token_counts, logits.dtype)
        if self.power == 1.0:
            return scaled
        return tf.sign(scaled) * tf.pow(tf.abs(scaled), self.power)

    def divisor(self, logits: tf.Tensor, token_counts: tf.Tensor) -> tf.Tensor:
        """What each raw logit is divided by to give its calibrated logit (explanations show
        it): T(n), times |u|^(1 - power) when bent; T(n) where the logit is 0."""
        temperature = self._temperature_tensor(token_counts, logits.dtype)
        if self.power == 1.0:
            return temperature
        scaled = tf.abs(logits / temperature)
        bent = temperature * tf.pow(scaled, 1.0 - self.power)
        return tf.where(tf.equal(scaled, 0.0), temperature, bent)

    def temperature(self, token_count: float) -> float:
        """T(n) for a text of `token_count` real tokens, as `apply` uses it."""
        return float(self.a + self.b * math.pow(max(token_count, 1.0), -self.p))

    def apply_numpy(self, logits: np.ndarray, token_counts: np.ndarray) -> np.ndarray:
        counts = np.maximum(np.asarray(token_counts, dtype=np.float64).reshape(-1), 1.0)
        z = np.asarray(logits, dtype=np.float64).reshape(-1)
        scaled = z / (self.a + self.b * counts**-self.p)
        return np.asarray(np.sign(scaled) * np.abs(scaled) ** self.power)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64))))


def binary_nll(
    logits: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None
) -> float:
    """(Weighted) mean negative log-likelihood of 0/1 labels under sigmoid(logits), stably."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    return float(np.average(np.logaddexp(0.0, z) - y * z, weights=sample_weight))


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
    method: str,
    logits: np.ndarray,
    labels: np.ndarray,
    token_counts: np.ndarray,
    sample_weight: np.ndarray | None = None,
) -> LengthTemperature:
    """The calibration `method` ("none", "temperature", "length", "length_power") minimising
    the (`sample_weight`-weighted) validation NLL."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    w = None if sample_weight is None else np.asarray(sample_weight, np.float64).reshape(-1)
    if w is not None and (w.shape != z.shape or np.any(w < 0) or not np.any(w > 0)):
        raise ValueError("sample_weight needs one non-negative weight per logit, not all zero")
    if method == "none":
        return LengthTemperature()
    if method == "temperature":
        return _fit_temperature(z, labels, w)
    if method == "length":
        return _fit_length_temperature(z, labels, token_counts, w)
    if method == "length_power":
        return _fit_length_power(z, labels, token_counts, w)
    raise ValueError(f"unknown calibration method {method!r}")


def _fit_temperature(
    z: np.ndarray, labels: np.ndarray, w: np.ndarray | None = None
) -> LengthTemperature:
    """One temperature, searched on log T so it stays positive."""
    result = minimize(
        lambda log_t: binary_nll(z / np.exp(log_t[0]), labels, w),
        x0=np.zeros(1),
        method="Nelder-Mead",
    )
    return LengthTemperature(a=float(np.exp(result.x[0])), b=0.0)


def _unpack(x: np.ndarray) -> tuple[float, float, float, float]:
    """Search coordinates to (a, b, p, power): a = _MIN_A + e^x0, b = e^x1, p = 2 sigmoid(x2),
    power = sigmoid(x3) in (0, 1) when a fourth coordinate is searched, else 1."""
    power = 1.0 / (1.0 + math.exp(-float(x[3]))) if len(x) > 3 else 1.0
    return (
        _MIN_A + float(np.exp(x[0])),
        float(np.exp(x[1])),
        _MAX_P / (1.0 + math.exp(-float(x[2]))),
        power,
    )


def _minimize_length_nll(
    z: np.ndarray,
    labels: np.ndarray,
    token_counts: np.ndarray,
    starts: list[np.ndarray],
    w: np.ndarray | None,
) -> tuple[LengthTemperature, float]:
    """The best T(n) (and power, for four-coordinate starts) over Nelder-Mead runs from `starts`."""
    log_counts = np.log(np.maximum(np.asarray(token_counts, np.float64).reshape(-1), 1.0))

    def loss(x: np.ndarray) -> float:
        a, b, p, power = _unpack(x)
        scaled = z / (a + b * np.exp(-p * log_counts))
        return binary_nll(np.sign(scaled) * np.abs(scaled) ** power, labels, w)

    best = min(
        (minimize(loss, x0=x0, method="Nelder-Mead", options={"maxiter": 4000}) for x0 in starts),
        key=lambda r: r.fun,
    )
    a, b, p, power = _unpack(best.x)
    return LengthTemperature(a=a, b=b, p=p, power=power), float(best.fun)


def _fit_length_temperature(
    z: np.ndarray, labels: np.ndarray, token_counts: np.ndarray, w: np.ndarray | None = None
) -> LengthTemperature:
    """a, b, p of T(n) = a + b / n^p, from a few starts around the single temperature."""
    log_start = math.log(_fit_temperature(z, labels, w).a)
    starts = [np.array([log_start, log_start, w]) for w in (-1.1, 0.0, 1.1)] + [
        np.array([log_start, -5.0, 0.0])
    ]
    return _minimize_length_nll(z, labels, token_counts, starts, w)[0]


def _fit_length_power(
    z: np.ndarray, labels: np.ndarray, token_counts: np.ndarray, w: np.ndarray | None = None
) -> LengthTemperature:
    """T(n) and the power together, started from the plain length fit (kept if not beaten)."""
    plain = _fit_length_temperature(z, labels, token_counts, w)
    p_start = min(max(plain.p, 1e-3), _MAX_P - 1e-3)
    start = np.array(
        [
            math.log(max(plain.a - _MIN_A, 1e-9)),
            math.log(max(plain.b, 1e-9)),
            math.log(p_start / (_MAX_P - p_start)),
            3.0,  # power 0.95: start next to the plain fit
        ]
    )
    fitted, nll = _minimize_length_nll(z, labels, token_counts, [start], w)
    return fitted if nll < binary_nll(plain.apply_numpy(z, token_counts), labels, w) else plain
