"""The folded export equals the Keras model in every signature, explains itself exactly, and marks
negation scopes as documented, all checked through a reloaded SavedModel."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import tensorflow as tf

from contract import EXPLAIN_SIGNATURE_NAME, SCORE_SIGNATURE_NAME, SIGNATURE_NAME
from training import data as data_lib
from training import text as text_lib
from training.calibration import LengthTemperature
from training.export import (
    PADDING_UNIT,
    ExportError,
    TrainedModel,
    check_signatures,
    verify_export,
    write_saved_model,
)
from training.model import PRESETS, Hyperparameters, build_model, build_vectorizer

VOCABULARY_TEXTS = [
    "I did not like it, but the music was great",
    "never boring and never funny",
    "not bad at all",
    "good good fun",
    "the worst film",
    "i don't like it",
    "énorme succès",
]
SEQUENCE_LENGTH = 12
TEXTS = [
    "",  # empty
    "?!...",  # empty after standardization
    "good",  # one token
    "good fun " * 3,  # below the sequence length
    "good fun the worst " * 3,  # exactly at it (12 words, before n-grams)
    "never boring " * 40,  # far beyond it
    "Zebra quantum",  # only unseen words
    "I did NOT like it, but the music was great!",
    "ÉNORME Succès",  # a capital the ASCII lower case leaves: the missed-token path lowers it
    # punctuation inside a negation scope: dropped, never marked
    'not well-made -- good fun!!! and not \u2018great\u2019, "the worst" film... never',
]


class Exported(NamedTuple):
    trained: TrainedModel
    loaded: Any
    path: Path


def _export(
    tmp_path: Path,
    params: Hyperparameters,
    calibration: LengthTemperature,
    vocabulary_texts: list[str] = VOCABULARY_TEXTS,
) -> Exported:
    vectorizer = build_vectorizer(params)
    vectorizer.adapt(tf.constant(vocabulary_texts))
    model = build_model(params, vectorizer.get_vocabulary())
    # Random, clearly non-zero weights, with a tied-negation weight that is not 1.
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 1, w.shape).astype(np.float32) for w in model.get_weights()])
    trained = TrainedModel(params, vectorizer, model, calibration)
    write_saved_model(trained, tmp_path)
    return Exported(trained, tf.saved_model.load(str(tmp_path)), tmp_path)


def _default_export(tmp_path: Path, max_tokens: int, ngrams: int) -> Exported:
    """The default's pipeline, small and with random weights, at `ngrams` words per unit."""
    params = dataclasses.replace(
        PRESETS["default"],
        max_tokens=max_tokens,
        sequence_length=SEQUENCE_LENGTH,
        ngrams=ngrams,
        embedding_init="uniform",
        counterfactuals=False,
    )
    return _export(tmp_path, params, LengthTemperature(a=0.5, b=2.0))


@pytest.fixture(scope="module")
def pairs_export(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Words and pairs (versions 3 and 4)."""
    return _default_export(tmp_path_factory.mktemp("default"), max_tokens=80, ngrams=2)


@pytest.fixture(scope="module")
def trigram_export(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Words, pairs and triples (version 5 on)."""
    return _default_export(tmp_path_factory.mktemp("trigram"), max_tokens=120, ngrams=3)


@pytest.fixture(scope="module")
def tutorial_export(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    params = dataclasses.replace(PRESETS["tutorial"], max_tokens=40, sequence_length=10)
    return _export(tmp_path_factory.mktemp("tutorial"), params, LengthTemperature())


def _explain(loaded: Any, texts: list[str]) -> dict[str, np.ndarray]:
    outputs = loaded.signatures[EXPLAIN_SIGNATURE_NAME](text=tf.constant(texts))
    return {key: value.numpy() for key, value in outputs.items()}


def _units(loaded: Any, texts: list[str]) -> list[list[str]]:
    explained = _explain(loaded, texts)
    splits = np.concatenate([[0], np.cumsum(explained["units_per_text"])])
    units = [u.decode() for u in explained["units"]]
    return [units[splits[i] : splits[i + 1]] for i in range(len(texts))]


@pytest.mark.parametrize("which", ["pairs_export", "trigram_export", "tutorial_export"])
def test_folded_graph_equals_the_keras_model_at_every_length(
    which: str, request: pytest.FixtureRequest
) -> None:
    trained, loaded, _ = request.getfixturevalue(which)
    served = loaded.signatures[SIGNATURE_NAME](text=tf.constant(TEXTS))
    probability = served["probability"].numpy()[:, 0]
    np.testing.assert_allclose(probability, trained.reference_probabilities(TEXTS), atol=1e-5)
    np.testing.assert_allclose(
        probability, 1 / (1 + np.exp(-served["logit"].numpy()[:, 0])), atol=1e-6
    )
    scored = loaded.signatures[SCORE_SIGNATURE_NAME](text=tf.constant(TEXTS))
    np.testing.assert_allclose(scored["probability"].numpy()[:, 0], probability, atol=1e-7)


@pytest.mark.parametrize("which", ["pairs_export", "trigram_export", "tutorial_export"])
def test_explanations_add_up_exactly(which: str, request: pytest.FixtureRequest) -> None:
    _, loaded, _ = request.getfixturevalue(which)
    explained = _explain(loaded, TEXTS)
    splits = np.concatenate([[0], np.cumsum(explained["units_per_text"])])
    for i in range(len(TEXTS)):
        share = explained["contributions"][splits[i] : splits[i + 1]].sum()
        assert share + explained["bias"][i] == pytest.approx(explained["raw_logit"][i], abs=1e-5)
        assert explained["logit"][i] == pytest.approx(
            explained["raw_logit"][i] / explained["temperature"][i], rel=1e-5
        )
    served = loaded.signatures[SIGNATURE_NAME](text=tf.constant(TEXTS))
    np.testing.assert_allclose(
        explained["probability"], served["probability"].numpy()[:, 0], atol=1e-6
    )


def test_input_accounting_on_constructed_texts(pairs_export: Exported) -> None:
    _, loaded, _ = pairs_export
    texts = ["", "good", "zebra quantum good", "good " * 40]
    explained = _explain(loaded, texts)
    scored = loaded.signatures[SCORE_SIGNATURE_NAME](text=tf.constant(texts))
    # "good" = 1 unit; "zebra quantum good" = 3 words + 2 bigrams, of which only "good" is known.
    assert explained["token_count"].tolist() == [0, 1, 5, SEQUENCE_LENGTH]
    assert explained["truncated"].tolist() == [False, False, False, True]
    assert explained["oov_count"].tolist() == [0, 0, 4, 0]
    np.testing.assert_allclose(explained["oov_share"], [0.0, 0.0, 0.8, 0.0], atol=1e-6)
    assert scored["token_count"].numpy().tolist() == explained["token_count"].tolist()
    assert scored["oov_count"].numpy().tolist() == explained["oov_count"].tolist()
    assert scored["truncated"].numpy().tolist() == explained["truncated"].tolist()
    assert _units(loaded, [""])[0] == ["[UNK]"], "an empty text is scored as one unknown unit"


def test_trigram_accounting_matches_the_explained_units(trigram_export: Exported) -> None:
    _, loaded, _ = trigram_export
    texts = ["zebra quantum good", "not bad at all", "good fun " * 3, "never boring " * 40]
    explained = _explain(loaded, texts)
    scored = loaded.signatures[SCORE_SIGNATURE_NAME](text=tf.constant(texts))
    # 3 words + 2 pairs + 1 triple; 4 + 3 + 2; 6 + 5 + 4 = 15, cut at the sequence length.
    assert explained["token_count"].tolist() == [6, 9, SEQUENCE_LENGTH, SEQUENCE_LENGTH]
    assert scored["token_count"].numpy().tolist() == explained["token_count"].tolist()
    assert scored["oov_count"].numpy().tolist() == explained["oov_count"].tolist()
    assert scored["truncated"].numpy().tolist() == [False, False, True, True]
    triples = ["not NOT_bad NOT_at", "NOT_bad NOT_at NOT_all"]
    assert _units(loaded, ["not bad at all"])[0][-2:] == triples


def test_tutorial_explanations_show_the_padding_share(tutorial_export: Exported) -> None:
    _, loaded, _ = tutorial_export
    assert _units(loaded, ["good fun"])[0] == ["good", "fun", PADDING_UNIT]


WORDS_ONLY = dataclasses.replace(
    PRESETS["default"], max_tokens=80, ngrams=1, embedding_init="uniform", counterfactuals=False
)


@pytest.fixture(scope="module")
def negation_export(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _export(tmp_path_factory.mktemp("words"), WORDS_ONLY, LengthTemperature()).loaded


@pytest.mark.parametrize(
    ("text", "units"),
    [
        # punctuation ends the scope
        ("not good. good", ["not", "NOT_good", "good"]),
        ("never boring, really fun", ["never", "NOT_boring", "really", "fun"]),
        # "but" (and other contrast words) reset it
        ("not good but great", ["not", "NOT_good", "but", "great"]),
        ("not great although fun", ["not", "NOT_great", "although", "fun"]),
        # contractions and apostrophes, straight, curly or missing
        ("I didn't like it", ["i", "didn't", "NOT_like", "NOT_it"]),
        ("I don\u2019t like it", ["i", "don't", "NOT_like", "NOT_it"]),
        ("i dont like it", ["i", "dont", "NOT_like", "NOT_it"]),
        # capitalization
        ("I did NOT LIKE it", ["i", "did", "not", "NOT_like", "NOT_it"]),
        # two negators in one clause cancel
        ("never not funny", ["never", "not", "funny"]),
        ("not bad, not bad at all", ["not", "NOT_bad", "not", "NOT_bad", "NOT_at", "NOT_all"]),
        # a negator at the end of the text
        ("it was funny, not", ["it", "was", "funny", "not"]),
        ("not", ["not"]),
        # the scope runs across IMDB's line breaks no more than across a full stop
        ("not good<br />good", ["not", "NOT_good", "good"]),
    ],
)
def test_negation_scope_through_the_reloaded_saved_model(
    negation_export: Any, text: str, units: list[str]
) -> None:
    assert _units(negation_export, [text])[0] == units


MARKS_VOCABULARY = ["soooo good!!! 😍 :)", "so bad :( 😡", "dnt like it", "zero problems so far"]


def test_marks_and_informal_negation_reach_the_model_as_units(tmp_path: Path) -> None:
    """Emoticons (with or without a nose), emoji (skin tone dropped), "!!" runs, elongated words
    and informal negators are units of the vocabulary, found by the reloaded SavedModel."""
    params = dataclasses.replace(WORDS_ONLY, max_tokens=40)
    vectorizer = build_vectorizer(params)
    vectorizer.adapt(tf.constant(MARKS_VOCABULARY))
    vocabulary = vectorizer.get_vocabulary()
    assert {"soooo", "!!!", "😍", ":)", ":(", "😡", "dnt", "NOT_like", "NOT_problems"} <= set(
        vocabulary
    )
    loaded = _export(tmp_path, params, LengthTemperature(), vocabulary_texts=MARKS_VOCABULARY)
    texts = ["Soooo GOOD!!! 😍🏽 :-)", "So bad :-( 😡", "Dnt like it", "Zero problems so far"]
    assert _units(loaded.loaded, texts) == [
        ["soooo", "good", "!!!", "😍", ":)"],
        ["so", "bad", ":(", "😡"],
        ["dnt", "NOT_like", "NOT_it"],
        ["zero", "NOT_problems", "NOT_so", "NOT_far"],
    ]
    scored = loaded.loaded.signatures[SCORE_SIGNATURE_NAME](text=tf.constant(texts))
    assert scored["oov_count"].numpy().tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("which", ["pairs_export", "trigram_export", "tutorial_export"])
def test_every_signature_passes_the_export_check_and_a_wrong_reference_fails_it(
    which: str, request: pytest.FixtureRequest
) -> None:
    trained, _, path = request.getfixturevalue(which)
    reference = trained.reference(TEXTS)
    served = verify_export(path, TEXTS, reference)
    np.testing.assert_allclose(served, reference.probabilities, atol=1e-5)
    with pytest.raises(ExportError, match="`serving_default` differs"):
        verify_export(path, TEXTS, dataclasses.replace(reference, probabilities=served + 1e-3))
    with pytest.raises(ExportError, match="`explain` returns raw logits"):
        verify_export(
            path, TEXTS, dataclasses.replace(reference, raw_logits=reference.raw_logits + 0.1)
        )
    with pytest.raises(ExportError, match="`explain` explains another number of units"):
        units = reference.units_explained + 1
        verify_export(path, TEXTS, dataclasses.replace(reference, units_explained=units))


@pytest.fixture(scope="module")
def reviews(real_imdb_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A vocabulary adapted on real training reviews, and other (test) reviews to score."""
    dataset = data_lib.load(str(real_imdb_archive), tmp_path_factory.mktemp("cache"))
    return dataset.train.sample(400, seed=1).texts, dataset.test.sample(200, seed=2).texts


def test_real_reviews_get_the_vectorizers_units_in_every_signature(
    reviews: Any, tmp_path: Path
) -> None:
    """Serving and explain share one text → units function; on real reviews (IMDB's markup,
    Windows-1252 dashes, quotes, long texts cut at the sequence length) its units are the
    vectorizer's, name for name, known or not, and every signature scores as Keras does."""
    vocabulary_texts, texts = reviews
    params = dataclasses.replace(
        PRESETS["default"], max_tokens=3000, sequence_length=600, embedding_init="uniform",
        counterfactuals=False,
    )  # fmt: skip
    vectorizer = build_vectorizer(params)
    vectorizer.adapt(tf.constant(vocabulary_texts))
    model = build_model(params, vectorizer.get_vocabulary())
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(0, 1, w.shape).astype(np.float32) for w in model.get_weights()])
    trained = TrainedModel(params, vectorizer, model, LengthTemperature(a=0.5, b=2.0, power=0.8))
    write_saved_model(trained, tmp_path)
    verify_export(tmp_path, texts, trained.reference(texts))
    # The vectorizer's units as strings (its standardize and split are these), every n-gram
    # after the words, cut at the sequence length.
    split = text_lib.split_marking_negation(text_lib.standardize(tf.constant(texts)))
    expected = tf.strings.ngrams(split, ngram_width=(1, 2, 3), separator=" ")[:, :600]
    assert _units(tf.saved_model.load(str(tmp_path)), texts) == [
        [unit.decode() for unit in row] for row in expected.to_list()
    ]


@pytest.mark.parametrize("which", ["pairs_export", "trigram_export", "tutorial_export"])
def test_batches_without_a_single_word_are_answered_by_every_signature(
    which: str, request: pytest.FixtureRequest
) -> None:
    trained, loaded, _ = request.getfixturevalue(which)
    for texts in ([""], ["", "   "], ["!?"], ["not"]):
        check_signatures(loaded.signatures, texts, trained.reference(texts))
