"""The inline session runs a version's own graph: every signature answers exactly as the
eagerly loaded SavedModel does, and a graph it cannot run is left to the eager path."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from app.core.inline_session import InlineModel, load_inline, text_input
from app.core.predictor import Predictor
from contract import (
    CARD_FILE,
    EXPLAIN_SIGNATURE_NAME,
    INPUT_NAME,
    LOGIT_OUTPUT,
    PROBABILITY_OUTPUT,
    SCORE_SIGNATURE_NAME,
    SIGNATURE_NAME,
)
from tests.paths import SHIPPED_MODEL_BASE

HOT = (SCORE_SIGNATURE_NAME, SIGNATURE_NAME)
TEXTS = [
    "A wonderful film.",
    "not bad at all :)",
    "",
    "Ce n'était pas terrible 😡😡 !!",
    "Dreadful, boring and far too long. " * 200,
]


@pytest.fixture(scope="module")
def inline_model(source_version_dir: Path) -> InlineModel:
    model = load_inline(source_version_dir, HOT, intra_op_threads=1, inter_op_threads=1)
    assert model is not None, "the newest version's scoring graph has no control flow"
    return model


def test_every_signature_answers_as_the_eager_savedmodel(
    inline_model: InlineModel, source_version_dir: Path
) -> None:
    eager = tf.saved_model.load(str(source_version_dir))
    assert set(inline_model.signatures) == set(eager.signatures.keys())
    for name, signature in inline_model.signatures.items():
        actual = signature(**{INPUT_NAME: text_input(TEXTS)})
        expected = eager.signatures[name](**{INPUT_NAME: tf.constant(TEXTS)})
        assert set(actual) == set(expected), name
        for output, tensor in expected.items():
            np.testing.assert_array_equal(actual[output], tensor.numpy(), err_msg=output)


def test_an_empty_batch_gives_empty_outputs(inline_model: InlineModel) -> None:
    outputs = inline_model.signatures[SIGNATURE_NAME](**{INPUT_NAME: text_input([])})
    assert all(np.asarray(value).size == 0 for value in outputs.values())


def _save(path: Path, with_control_flow: bool) -> Path:
    """A small strings-in SavedModel (probability and logit from a text's length) whose
    serving signature does or does not branch."""

    class Lengths(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
        def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
            length = tf.cast(tf.strings.length(text), tf.float32)[:, tf.newaxis]
            if with_control_flow:
                length = tf.cond(tf.size(text) > 0, lambda: length * 2.0, lambda: length)
            logit = length / 10.0 - 1.0
            return {"length": length, PROBABILITY_OUTPUT: tf.sigmoid(logit), LOGIT_OUTPUT: logit}

    module = Lengths()
    tf.saved_model.save(module, str(path), signatures={SIGNATURE_NAME: module.serve})
    return path


def test_a_scoring_graph_with_control_flow_is_left_to_the_eager_path(tmp_path: Path) -> None:
    branching = _save(tmp_path / "branching", with_control_flow=True)
    assert load_inline(branching, HOT, intra_op_threads=1, inter_op_threads=1) is None
    straight = load_inline(
        _save(tmp_path / "straight", with_control_flow=False),
        HOT,
        intra_op_threads=1,
        inter_op_threads=1,
    )
    assert straight is not None
    outputs = straight.signatures[SIGNATURE_NAME](**{INPUT_NAME: text_input(["abc", ""])})
    np.testing.assert_array_equal(outputs["length"], [[3.0], [0.0]])


def test_the_predictor_serves_a_branching_graph_eagerly(
    tmp_path: Path, model_card: dict[str, Any]
) -> None:
    version_dir = _save(tmp_path / "1", with_control_flow=True)
    texts = ["abc", "a longer text"]
    probabilities = 1 / (1 + np.exp(-(np.array([len(t) for t in texts]) * 2 / 10 - 1)))
    card = {**model_card, "version": 1, "samples": []}
    card["samples"] = [
        {"text": t, "probability": float(p)} for t, p in zip(texts, probabilities, strict=True)
    ]
    (version_dir / CARD_FILE).write_text(json.dumps(card))
    predictor = Predictor.load(version_dir)
    assert not isinstance(predictor._owner, InlineModel)
    np.testing.assert_allclose(predictor.predict_probabilities(texts), probabilities, rtol=1e-6)


def test_the_predictor_scores_the_newest_version_inline(source_version_dir: Path) -> None:
    predictor = Predictor.load(source_version_dir)
    assert isinstance(predictor._owner, InlineModel)
    scores = predictor.predict_scores(TEXTS)
    assert scores.shape == (len(TEXTS), 2)
    assert np.all((scores[:, 0] >= 0) & (scores[:, 0] <= 1))


def test_control_flow_outside_the_scoring_path_runs_with_one_inter_op_thread_set() -> None:
    """Version 7's explain branches (StatelessIf); with one inter-op thread configured it
    would hang in the inline executor, so the session keeps a second pool thread for it."""
    model = load_inline(SHIPPED_MODEL_BASE / "7", HOT, intra_op_threads=1, inter_op_threads=1)
    assert model is not None
    answers: list[Any] = []
    explain = model.signatures[EXPLAIN_SIGNATURE_NAME]
    worker = threading.Thread(
        target=lambda: answers.append(explain(**{INPUT_NAME: text_input(TEXTS)})), daemon=True
    )
    worker.start()
    worker.join(timeout=120)  # a hang fails here instead of stalling the suite
    assert answers, "explain did not answer"
