"""Calibration maths: ECE on hand-checked inputs, and fitting that really lowers NLL."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from training.calibration import (
    LengthTemperature,
    binary_nll,
    expected_calibration_error,
    fit_length_temperature,
    fit_temperature,
    token_counts,
)


def test_ece_is_zero_when_confidence_matches_accuracy() -> None:
    # Ten predictions at 0.8 of which eight are right: confidence 0.8, accuracy 0.8.
    probabilities = np.full(10, 0.8)
    labels = np.array([1] * 8 + [0] * 2)
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0, abs=1e-12)


def test_ece_on_known_bins() -> None:
    # Bin of 0.95 (4 items, all right: gap 0.05) and bin of p=0.3 → confidence 0.7 for the
    # negative class (4 items, half right: gap 0.2). ECE = 0.5 * 0.05 + 0.5 * 0.2 = 0.125.
    probabilities = np.array([0.95] * 4 + [0.3] * 4)
    labels = np.array([1, 1, 1, 1, 0, 0, 1, 1])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.125)


def test_ece_of_a_confidently_wrong_model_is_large() -> None:
    assert expected_calibration_error(np.array([0.99, 0.01]), np.array([0, 1])) > 0.98


def _overconfident_toy(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits from a true logistic model with slope 1, reported three times too large."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0.0, 2.0, size=4000)
    labels = (rng.random(4000) < 1 / (1 + np.exp(-true_logits))).astype(np.float64)
    return 3.0 * true_logits, labels


def test_temperature_fit_recovers_the_scale_and_lowers_nll() -> None:
    logits, labels = _overconfident_toy()
    fitted = fit_temperature(logits, labels)
    assert fitted.a == pytest.approx(3.0, rel=0.1) and fitted.b == 0.0
    assert binary_nll(logits / fitted.a, labels) < binary_nll(logits, labels) - 0.05
    calibrated = 1 / (1 + np.exp(-logits / fitted.a))
    assert expected_calibration_error(calibrated, labels) < expected_calibration_error(
        1 / (1 + np.exp(-logits)), labels
    )


def test_length_temperature_tames_short_texts_that_one_temperature_cannot() -> None:
    # Short texts (n = 4) are 4x overconfident, long ones (n = 400) are honest, as with a mean
    # pooled bag of words: a single temperature cannot serve both, T(n) = a + b/sqrt(n) can.
    rng = np.random.default_rng(1)
    counts = np.where(rng.random(6000) < 0.5, 4.0, 400.0)
    true_logits = rng.normal(0.0, 2.0, size=6000)
    labels = (rng.random(6000) < 1 / (1 + np.exp(-true_logits))).astype(np.float64)
    logits = true_logits * np.where(counts == 4.0, 4.0, 1.0)
    single = fit_temperature(logits, labels)
    by_length = fit_length_temperature(logits, labels, counts)
    nll_single = binary_nll(logits / single.a, labels)
    nll_length = binary_nll(by_length.apply_numpy(logits, counts), labels)
    assert nll_length < nll_single - 0.02
    assert by_length.b > 0, "short texts get the larger temperature"


def test_identity_and_tf_application_agree_with_numpy() -> None:
    logits = np.array([[2.0], [-6.0]], dtype=np.float32)
    counts = np.array([[1.0], [100.0]], dtype=np.float32)
    np.testing.assert_array_equal(LengthTemperature().apply_numpy(logits, counts), logits)
    calibrated = LengthTemperature(a=1.0, b=3.0).apply_numpy(logits, counts)
    np.testing.assert_allclose(calibrated, [[2.0 / 4.0], [-6.0 / 1.3]], rtol=1e-6)
    assert LengthTemperature(a=1.0, b=3.0).temperature(100) == pytest.approx(1.3)
    assert LengthTemperature(a=-5.0, b=1.0).temperature(100) > 0, "T never reaches zero"


def test_token_counts_ignore_padding() -> None:
    ids = tf.constant([[5, 3, 1, 0, 0], [0, 0, 0, 0, 0], [9, 9, 9, 9, 9]], dtype=tf.int64)
    assert token_counts(ids).numpy()[:, 0].tolist() == [3.0, 0.0, 5.0]
