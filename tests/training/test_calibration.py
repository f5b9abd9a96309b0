"""Calibration maths: ECE on hand-checked inputs, and fitting that really lowers NLL."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from training.calibration import (
    LengthTemperature,
    binary_nll,
    expected_calibration_error,
    fit,
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
    fitted = fit("temperature", logits, labels, np.ones_like(logits))
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
    single = fit("temperature", logits, labels, counts)
    by_length = fit("length", logits, labels, counts)
    nll_single = binary_nll(logits / single.a, labels)
    nll_length = binary_nll(by_length.apply_numpy(logits, counts), labels)
    assert nll_length < nll_single - 0.02
    assert by_length.b > 0, "short texts get the larger temperature"


def test_identity_and_tf_application_agree_with_numpy() -> None:
    logits = np.array([[2.0], [-6.0]], dtype=np.float32)
    counts = np.array([[1.0], [100.0]], dtype=np.float32)
    np.testing.assert_array_equal(LengthTemperature().apply_numpy(logits, counts), logits[:, 0])
    calibration = LengthTemperature(a=1.0, b=3.0)
    calibrated = calibration.apply_numpy(logits, counts)
    np.testing.assert_allclose(calibrated, [2.0 / 4.0, -6.0 / 1.3], rtol=1e-6)
    in_graph = calibration.apply(tf.constant(logits), tf.constant(counts)).numpy()[:, 0]
    np.testing.assert_allclose(in_graph, calibrated, rtol=1e-6)
    assert LengthTemperature(a=1.0, b=3.0).temperature(100) == pytest.approx(1.3)


def test_temperature_stays_positive_at_every_length() -> None:
    """a > 0 and b >= 0 are enforced, so T(n) can never cross zero however long texts get."""
    with pytest.raises(ValueError, match="positive"):
        LengthTemperature(a=-0.36, b=28.0)  # what version 2's fit produced
    with pytest.raises(ValueError, match="positive"):
        LengthTemperature(a=1.0, b=-1.0)
    # Data that pulls T down for long texts: the fit still returns a valid (positive) T(n).
    rng = np.random.default_rng(2)
    counts = rng.integers(1, 3000, size=5000).astype(np.float64)
    true_logits = rng.normal(0.0, 2.0, size=5000)
    labels = (rng.random(5000) < 1 / (1 + np.exp(-true_logits))).astype(np.float64)
    fitted = fit("length", true_logits * (1 + 8 / np.sqrt(counts)) * 0.2, labels, counts)
    assert fitted.a > 0 and fitted.b >= 0
    assert all(fitted.temperature(n) > 0 for n in (1, 10, 1000, 10**6, 10**9))


def test_the_power_fixes_a_shape_no_temperature_can() -> None:
    # Under-confident near 0.5 and over-confident at the extremes, like short texts: the true
    # logit is sign(z) |z|^0.6 of what the model reports.
    rng = np.random.default_rng(3)
    counts = rng.integers(5, 60, size=8000).astype(np.float64)
    reported = rng.normal(0.0, 3.0, size=8000)
    true_logits = np.sign(reported) * np.abs(reported) ** 0.6
    labels = (rng.random(8000) < 1 / (1 + np.exp(-true_logits))).astype(np.float64)
    plain = fit("length", reported, labels, counts)
    bent = fit("length_power", reported, labels, counts)
    assert bent.power == pytest.approx(0.6, abs=0.1)
    assert plain.power == 1.0
    nll_plain = binary_nll(plain.apply_numpy(reported, counts), labels)
    assert binary_nll(bent.apply_numpy(reported, counts), labels) < nll_plain - 0.002
    ece = [
        expected_calibration_error(1 / (1 + np.exp(-c.apply_numpy(reported, counts))), labels)
        for c in (plain, bent)
    ]
    assert ece[1] < ece[0] / 2
    # Monotone at every length: the order of the logits, and so every decision, is unchanged.
    grid = np.linspace(-8.0, 8.0, 201)
    for n in (1.0, 20.0, 2000.0):
        assert np.all(np.diff(bent.apply_numpy(grid, np.full_like(grid, n))) > 0)
    assert np.array_equal(bent.apply_numpy(reported, counts) > 0, reported > 0)


def test_power_in_the_graph_and_its_divisor_agree_with_numpy() -> None:
    calibration = LengthTemperature(a=0.5, b=3.0, p=0.8, power=0.7)
    logits = np.array([[2.0], [-6.0], [0.0], [0.01]], dtype=np.float32)
    counts = np.array([[1.0], [100.0], [7.0], [3.0]], dtype=np.float32)
    expected = calibration.apply_numpy(logits, counts)
    in_graph = calibration.apply(tf.constant(logits), tf.constant(counts)).numpy()[:, 0]
    np.testing.assert_allclose(in_graph, expected, rtol=1e-5)
    divisor = calibration.divisor(tf.constant(logits[:, 0]), tf.constant(counts[:, 0])).numpy()
    assert np.all(divisor > 0)
    np.testing.assert_allclose(logits[:, 0] / divisor, expected, rtol=1e-5, atol=1e-7)
    assert divisor[2] == pytest.approx(calibration.temperature(7.0))
    for power in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="monotone"):
            LengthTemperature(power=power)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="vibes"):
        fit("vibes", np.zeros(2), np.array([0, 1]), np.ones(2))


def test_sample_weights_decide_which_rows_the_calibration_serves() -> None:
    """Two domains, one three times overconfident, one honest: the weighted fit calibrates the
    domain that weighs most, zero weights are as good as absent rows, and equal domain weights
    land in between (what a run on several domains asks for)."""
    rng = np.random.default_rng(4)
    true_logits = rng.normal(0.0, 2.0, size=8000)
    labels = (rng.random(8000) < 1 / (1 + np.exp(-true_logits))).astype(np.float64)
    overconfident = np.arange(8000) < 2000  # the small domain
    logits = true_logits * np.where(overconfident, 3.0, 1.0)
    counts = np.ones(8000)
    temperature = {
        name: fit("temperature", logits, labels, counts, sample_weight=weights).a
        for name, weights in (
            ("small only", overconfident.astype(float)),
            ("large only", (~overconfident).astype(float)),
            ("per row", None),
            ("per domain", np.where(overconfident, 3.0, 1.0)),
        )
    }
    dropped = fit("temperature", logits[overconfident], labels[overconfident], counts[:2000]).a
    assert temperature["small only"] == pytest.approx(dropped, rel=1e-3)
    assert temperature["small only"] == pytest.approx(3.0, rel=0.1)
    assert temperature["large only"] == pytest.approx(1.0, rel=0.1)
    assert temperature["per row"] < temperature["per domain"] < temperature["small only"]
    with pytest.raises(ValueError, match="sample_weight"):
        fit("length_power", logits, labels, counts, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="sample_weight"):
        fit("length", logits, labels, counts, sample_weight=-np.ones(8000))
