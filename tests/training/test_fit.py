"""Training from unit counts: batches carry each text's ids, the folded model scores as Keras
does, the linear start is kept unless an epoch beats it on the per-domain mean, and the mix's
weights follow the recipe."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]
import tensorflow as tf

from training.data import ROW, SNIPPET, RunRow
from training.epochs import CountBatches, folded_logits, train
from training.fit import choose_start, sample_weights
from training.model import PRESETS, Hyperparameters, build_model, tokenize
from training.start import naive_bayes_start
from training.vectorize import Counts, adapt_vectorizer, count_units

TEXTS = ["great fun", "awful mess", "great cast", "awful plot"] * 8
LABELS = [1, 0, 1, 0] * 8
DOMAINS = ["film", "film", "food", "food"] * 8


def _counts(params: Hyperparameters, texts: list[str], labels: list[int]) -> tuple[Any, Counts]:
    vectorizer = adapt_vectorizer(params, iter(texts))
    rows = [
        RunRow(t, y, "c", d, "train", ROW)
        for t, y, d in zip(texts, labels, DOMAINS * (len(texts) // len(DOMAINS) + 1), strict=False)
    ]
    (counts,) = count_units(vectorizer, params, rows, lambda row: "all").values()
    return vectorizer, counts


@pytest.mark.parametrize("preset", ["default", "tutorial"])
def test_batches_hold_each_texts_ids_and_the_folded_model_scores_them_as_keras_does(
    preset: str,
) -> None:
    texts = ["I did not like it, but the music was great!", "awful", "", "great great fun"] * 5
    params = dataclasses.replace(
        PRESETS[preset], max_tokens=200, sequence_length=9, ngrams=2, embedding_init="uniform"
    )
    vectorizer, counts = _counts(params, texts, [1, 0, 1, 1] * 5)
    model = build_model(params, vectorizer.get_vocabulary())
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 1, w.shape).astype(np.float32) for w in model.get_weights()])
    batches = CountBatches(counts, np.arange(len(texts), dtype=np.float64), params, seed=1)
    expected = tokenize(vectorizer, params, tf.constant(texts))
    expected = expected.to_list() if isinstance(expected, tf.RaggedTensor) else expected.numpy()
    seen = []
    for index in range(len(batches)):
        ids, labels, weights = batches[index]
        if not params.mask_padding:
            assert ids.shape[1] == params.sequence_length, "the tutorial averages its padding"
        for row, label, weight in zip(ids, labels, weights, strict=True):
            i = int(weight)  # the weights were the row numbers
            assert sorted(t for t in row if t) == sorted(t for t in expected[i] if t)
            assert label == counts.labels[i]
            seen.append(i)
        keras_logits = model(ids, training=False).numpy()[:, 0]
        folded = folded_logits(model, params, counts.matrix[weights.astype(int)])
        np.testing.assert_allclose(folded, keras_logits, rtol=1e-4, atol=1e-5)
    assert sorted(seen) == list(range(len(texts))), "every text once per epoch"


def test_snippets_weigh_what_a_long_review_does_and_each_corpus_the_same() -> None:
    counts = Counts(
        matrix=sp.csr_matrix((7, 1)),
        labels=np.array([1, 1, 0, 0, 1, 0, 1], np.float32),
        corpora=np.array(["long", "long", "long", "long", "short", "short", "long"]),
        domains=np.array(["a"] * 7),
        kinds=np.array([ROW] * 6 + [SNIPPET]),
    )
    weights = sample_weights(counts, {"long": 1.0, "short": 1.0})
    assert weights[:4].sum() == pytest.approx(weights[4:6].sum()), "each corpus one share"
    assert weights[:6].mean() == pytest.approx(1.0)
    assert weights[6] == pytest.approx(weights[:4].mean())
    tripled = sample_weights(counts, {"long": 3.0, "short": 1.0})
    assert tripled[:4].sum() == pytest.approx(3 * tripled[4:6].sum())


def test_the_start_and_the_weights_are_chosen_by_the_mean_per_domain_accuracy() -> None:
    params = dataclasses.replace(PRESETS["default"], max_tokens=40, ngrams=1)
    vectorizer, counts = _counts(params, TEXTS, LABELS)
    start, weights, selection = choose_start(
        params,
        vectorizer.get_vocabulary(),
        counts,
        counts,
        [{"c": 1.0}, {"c": 2.0}],
        c_grid=(0.1, 1.0),
    )
    assert start is not None and len(selection.trials) == 4
    assert selection.varied == ("c",)
    best = max(t.score.key() for t in selection.trials)
    assert selection.best.score.key() == best
    assert set(selection.best.validation) == {"film", "food"}
    recorded = selection.to_dict()
    assert recorded["chosen"]["weights"] == {"c": selection.best.multipliers["c"]}
    assert len(recorded["tried"]) == 4 and "per-domain" in recorded["rule"]
    assert weights.shape == (len(TEXTS),)


def test_a_start_no_epoch_beats_is_kept_and_reported_as_zero_epochs() -> None:
    params = dataclasses.replace(
        PRESETS["default"],
        max_tokens=40,
        ngrams=1,
        embedding_init="naive_bayes",
        epochs=3,
        early_stopping_patience=1,
        learning_rate=0.5,  # large steps: training cannot improve on a perfect start
    )
    vectorizer, counts = _counts(params, TEXTS, LABELS)
    weights = np.ones(len(TEXTS))
    start = naive_bayes_start(
        counts.matrix, counts.labels, weights, np.ones(len(TEXTS), bool), [], 0.0
    )
    model = build_model(params, vectorizer.get_vocabulary(), start)
    start_weights = model.get_weights()
    record = train(model, params, CountBatches(counts, weights, params, 0), counts, verbose=0)
    assert record.epochs_run >= 1
    assert record.epochs_kept == 0 and "linear start" in record.weights_kept
    for kept, initial in zip(model.get_weights(), start_weights, strict=True):
        np.testing.assert_array_equal(kept, initial)
    assert {"val_loss", "val_accuracy", "val_domain_accuracy"} <= set(record.history.history)


def test_without_a_start_the_best_epoch_is_kept() -> None:
    params = dataclasses.replace(PRESETS["tutorial"], max_tokens=40, epochs=2)
    vectorizer, counts = _counts(params, TEXTS, LABELS)
    model = build_model(params, vectorizer.get_vocabulary())
    record = train(
        model, params, CountBatches(counts, np.ones(len(TEXTS)), params, 0), counts, verbose=0
    )
    assert record.epochs_run == 2 and 1 <= record.epochs_kept <= 2
    assert record.weights_kept.startswith("after epoch")
