"""Both presets share the tutorial's layer stack; the default masks padding, reads negation scopes
and n-grams, starts from naive-Bayes ratios and ties negated units to their base."""

from __future__ import annotations

import dataclasses
from typing import Literal

import keras
import numpy as np
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]
import tensorflow as tf

from training.model import (
    DEFAULT_PRESET,
    PRESETS,
    Hyperparameters,
    NegationTiedEmbedding,
    build_model,
    build_vectorizer,
    tie_base_ids,
    tokenize,
    unit_scores,
)
from training.start import (
    NBSVMDesign,
    clear_cut,
    naive_bayes_ratios,
    naive_bayes_start,
    nbsvm_start,
)
from training.text import negation_base_ids, standardize_tutorial
from training.vectorize import counts_matrix

ARCHITECTURE = [
    keras.layers.Embedding,
    keras.layers.Dropout,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.Dropout,
    keras.layers.Dense,
]


def test_the_default_preset_is_default_and_the_tutorial_is_unchanged() -> None:
    assert DEFAULT_PRESET == "default"
    tutorial = PRESETS["tutorial"]
    assert tutorial == Hyperparameters()
    assert (tutorial.max_tokens, tutorial.sequence_length, tutorial.embedding_dim) == (
        10_000,
        250,
        16,
    )
    assert (tutorial.ngrams, tutorial.mask_padding, tutorial.calibration) == (1, False, "none")
    assert tutorial.tokenizer == "tutorial" and tutorial.snippets_per_review == 0.0
    assert tutorial.embedding_init == "uniform" and not tutorial.negation_tie


def _tiny_vectorizer(params: Hyperparameters) -> keras.layers.TextVectorization:
    vectorizer = build_vectorizer(params)
    vectorizer.adapt(tf.constant(["not funny at all", "funny and good", "not good", "bad"]))
    return vectorizer


def _counts(
    vectorizer: keras.layers.TextVectorization, params: Hyperparameters, texts: list[str]
) -> sp.csr_matrix:
    return counts_matrix(tokenize(vectorizer, params, tf.constant(texts)), params.max_tokens)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_layers_are_the_tutorials_in_order(preset: str) -> None:
    params = dataclasses.replace(PRESETS[preset], max_tokens=60)
    vectorizer = _tiny_vectorizer(params)
    start = None
    if params.embedding_init != "uniform":
        counts = _counts(vectorizer, params, ["funny", "bad", "good", "not funny"])
        everything = np.ones(4, bool)
        start = naive_bayes_start(counts, np.array([1, 0, 1, 0]), np.ones(4), everything, [], 1.0)
    model = build_model(params, vectorizer.get_vocabulary(), start)
    assert [type(layer).__mro__[1] if type(layer) is NegationTiedEmbedding else type(layer)
            for layer in model.layers] == ARCHITECTURE  # fmt: skip
    embedding, dropout_a, _, dropout_b, dense = model.layers
    assert isinstance(embedding, keras.layers.Embedding)
    assert embedding.input_dim == params.max_tokens and embedding.output_dim == 16
    assert embedding.mask_zero is params.mask_padding
    assert dropout_a.rate == dropout_b.rate == params.dropout
    assert dense.units == 1 and dense.activation is keras.activations.linear
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    assert model.loss.get_config()["from_logits"] is True


def test_tutorial_pools_over_padding_and_default_over_real_tokens_only() -> None:
    """Without a mask a short text is averaged with its padding; with it, only real tokens."""
    outputs = {}
    for preset in ("tutorial", "default"):
        params = dataclasses.replace(
            PRESETS[preset],
            max_tokens=50,
            sequence_length=8,
            embedding_init="uniform",
            counterfactuals=False,
        )
        model = build_model(params, ["", "[UNK]"] + [f"w{i}" for i in range(48)])
        table = np.zeros((50, 16), dtype=np.float32)
        table[7] = 1.0  # a strongly-weighted word; id 0 (padding) stays at zero
        model.layers[0].set_weights([table, *model.layers[0].get_weights()[1:]])
        model.layers[-1].set_weights([np.ones((16, 1), np.float32), np.zeros(1, np.float32)])
        short = np.array([[7, 0, 0, 0, 0, 0, 0, 0]], dtype=np.int64)
        long = np.full((1, 8), 7, dtype=np.int64)
        outputs[preset] = [float(model(x, training=False).numpy()[0, 0]) for x in (short, long)]
    assert outputs["tutorial"][0] == pytest.approx(16 / 8), "the padding dilutes the short text"
    assert outputs["default"][0] == pytest.approx(16.0) == outputs["default"][1]


def test_tutorial_vectorizer_is_the_tutorials() -> None:
    vectorizer = build_vectorizer(Hyperparameters())
    config = vectorizer.get_config()
    assert config["max_tokens"] == 10_000 and config["output_sequence_length"] == 250
    assert config["ngrams"] is None
    cleaned = standardize_tutorial(tf.constant(["Great<br />FILM, really!!"])).numpy()[0]
    assert cleaned.decode().split() == ["great", "film", "really"]


def test_default_tokens_are_ragged_truncated_and_never_empty() -> None:
    params = dataclasses.replace(PRESETS["default"], max_tokens=60, sequence_length=5)
    vectorizer = _tiny_vectorizer(params)
    ids = tokenize(vectorizer, params, tf.constant(["", "?!", "bad", "funny " * 20]))
    assert isinstance(ids, tf.RaggedTensor)
    assert ids.row_lengths().numpy().tolist() == [1, 1, 1, 5]
    assert ids[0].numpy().tolist() == [1] == ids[1].numpy().tolist(), "one unknown token"


def test_naive_bayes_ratios_point_the_right_way_and_follow_the_weights() -> None:
    presence = [[0, 0, 1, 1, 0, 0], [0, 0, 1, 0, 1, 0], [0, 0, 0, 1, 0, 1], [0, 0, 0, 0, 1, 1]]
    counts = sp.csr_matrix(np.array(presence, np.float32))
    labels = np.array([1, 1, 0, 0])
    ratios = naive_bayes_ratios(counts, labels, np.ones(4))
    assert ratios[2] > 0 > ratios[5], "seen only in positive / only in negative documents"
    assert ratios[3] == pytest.approx(0.0) == ratios[4], "seen equally in both"
    assert ratios[0] == 0 == ratios[1], "padding and unknown carry no evidence"
    weighted = naive_bayes_ratios(counts, labels, np.array([1.0, 1.0, 5.0, 1.0]))
    assert weighted[3] < 0, "unit 3's negative text weighs five times its positive one"


def test_negated_units_are_tied_to_minus_their_base() -> None:
    vocabulary = ["", "[UNK]", "funny", "NOT_funny", "not NOT_funny", "NOT_dull", "good bad"]
    assert negation_base_ids(vocabulary) == [-1, -1, -1, 2, -1, -1, -1]
    assert tie_base_ids(vocabulary) == negation_base_ids(vocabulary)
    params = dataclasses.replace(
        PRESETS["default"],
        max_tokens=len(vocabulary),
        embedding_init="uniform",
        counterfactuals=False,
    )
    model = build_model(params, vocabulary)
    embedding = model.get_layer("embedding")
    assert isinstance(embedding, NegationTiedEmbedding)
    table = np.zeros((len(vocabulary), 16), np.float32)
    table[2] = 2.0  # "funny"
    table[3] = 0.5  # the correction of "NOT_funny"
    embedding.set_weights([table, np.float32(0.75)])
    vectors = embedding(tf.constant([[2, 3, 5]])).numpy()[0]
    np.testing.assert_allclose(vectors[1], -0.75 * 2.0 + 0.5)
    np.testing.assert_allclose(embedding.effective_embeddings()[[2, 3, 5]], vectors)
    scores, _ = unit_scores(model)
    kernel = model.get_layer("logit").get_weights()[0][:, 0]
    assert scores[3] == pytest.approx(float((-0.75 * 2.0 + 0.5) * kernel.sum()), rel=1e-5)


def test_any_negated_unit_is_tied_to_its_plain_form_without_the_negators() -> None:
    vocabulary = [
        "", "[UNK]", "bad", "NOT_bad", "not NOT_bad", "is bad", "is not NOT_bad", "really bad",
        "NOT_really NOT_bad", "didn't NOT_like NOT_it", "like it", "NOT_great", "not",
    ]  # fmt: skip
    bases = tie_base_ids(vocabulary, "any_negated")
    tied = {vocabulary[i]: vocabulary[b] for i, b in enumerate(bases) if b >= 0}
    assert tied == {
        "NOT_bad": "bad",
        "not NOT_bad": "bad",
        "is not NOT_bad": "is bad",
        "NOT_really NOT_bad": "really bad",
        "didn't NOT_like NOT_it": "like it",
    }, "units without a negated word, or whose plain form is not a unit, stay untied"


@pytest.mark.parametrize("kind", ["naive_bayes", "nbsvm"])
def test_linear_start_is_already_a_good_model(kind: Literal["naive_bayes", "nbsvm"]) -> None:
    """The untrained Keras model computes the linear start's decisions exactly."""
    params = dataclasses.replace(PRESETS["default"], max_tokens=60, embedding_init=kind)
    vectorizer = _tiny_vectorizer(params)
    vocabulary = vectorizer.get_vocabulary()
    texts = ["funny and good"] * 5 + ["bad"] * 5 + ["good"] * 3 + ["not good"] * 3
    labels = np.array([1] * 5 + [0] * 5 + [1] * 3 + [0] * 3)
    ids = tokenize(vectorizer, params, tf.constant(texts))
    counts = _counts(vectorizer, params, texts)
    weights, rows = np.ones(len(texts)), np.ones(len(texts), bool)
    bases = tie_base_ids(vocabulary, params.negation_tie_units)
    if kind == "naive_bayes":
        start = naive_bayes_start(counts, labels, weights, rows, bases, 1.0)
    else:
        design = NBSVMDesign.of(counts, labels, weights, rows, bases, 1.0)
        scores = design.fit(design.features(counts), labels, weights, 1.0)
        start = nbsvm_start(scores, counts, labels, weights, "NBSVM", 1.0)
    model = build_model(params, vocabulary, start)
    logits = model(ids.to_tensor(), training=False).numpy()[:, 0]
    assert np.mean((logits > 0) == (labels == 1)) == 1.0
    expected = start.scale * tf.reduce_mean(tf.gather(start.scores, ids), axis=1).numpy()
    np.testing.assert_allclose(logits, expected + start.bias, atol=0.05)
    assert clear_cut(start, counts, labels, 0.5).all()
    # The tie holds at the start: "NOT_good" scores minus "good" (its correction is zero).
    if "NOT_good" in vocabulary and kind == "naive_bayes":
        negated, base = vocabulary.index("NOT_good"), vocabulary.index("good")
        assert start.scores[negated] == pytest.approx(-start.scores[base])


def test_rows_at_weight_zero_change_nothing() -> None:
    """The sample weights reach the regression: at zero a row is as good as absent."""
    params = dataclasses.replace(PRESETS["default"], max_tokens=60, embedding_init="nbsvm")
    vectorizer = _tiny_vectorizer(params)
    vocabulary = vectorizer.get_vocabulary()
    texts = ["funny and good"] * 4 + ["bad"] * 4 + ["good"] * 3
    counts = _counts(vectorizer, params, texts)
    contradicting = np.array([1] * 4 + [0] * 4 + [0] * 3)  # "good" labelled negative
    reviews = np.arange(len(texts)) < 8
    bases = tie_base_ids(vocabulary, params.negation_tie_units)

    def scores(weight: float) -> np.ndarray:
        weights = np.where(reviews, 1.0, weight)
        design = NBSVMDesign.of(counts, contradicting, weights, reviews, bases, 0.5)
        return design.fit(design.features(counts), contradicting, weights, 1.0)

    alone = NBSVMDesign.of(counts[:8], contradicting[:8], np.ones(8), reviews[:8], bases, 0.5)
    alone_scores = alone.fit(alone.features(counts[:8]), contradicting[:8], np.ones(8), 1.0)
    np.testing.assert_allclose(scores(0.0), alone_scores, atol=1e-4)
    good = vocabulary.index("good")
    assert scores(1.0)[good] < alone_scores[good]


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="ngrams"):
        Hyperparameters(ngrams=0)
    with pytest.raises(ValueError, match="negation tokenizer"):
        Hyperparameters(negation_tie=1.0)
    with pytest.raises(ValueError, match="mask_padding"):
        Hyperparameters(embedding_init="nbsvm")
    with pytest.raises(ValueError, match="counterfactuals need snippets"):
        dataclasses.replace(PRESETS["default"], counterfactuals=True, snippets_per_review=0.0)
