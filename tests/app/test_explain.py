"""POST /v1/explain, the input and drift metrics, and GET / through HTTP with the real model.

The SavedModel-level exactness is tested in tests/training/test_export.py; these check what
the service makes of it: every number reaches the client unchanged, agrees with /v1/predict,
and the limits, the API key and the 501 for older versions hold.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Histogram

from app.core import explainer as explain_module
from app.core.input_metrics import PROBABILITY_BUCKETS, InputBatch, InputMetrics
from app.main import create_app
from app.metrics import DeferredObservations
from app.settings import Settings
from contract import ModelCard
from tests.app.conftest import metric_sum, publish_version, registry_samples
from tests.app.explain_models import explain_version_dir, legacy_version_dir
from tests.paths import REPO_ROOT

# Invented words: out of any vocabulary learned from IMDB.
UNSEEN = ("zqxwvy", "blorfquam", "vextrillo")


@pytest.fixture(scope="module")
def explain_dir() -> Path:
    return explain_version_dir()


@pytest.fixture(scope="module")
def card(explain_dir: Path) -> ModelCard:
    return ModelCard.read(explain_dir)


@pytest.fixture
def explain_settings(tmp_path: Path, explain_dir: Path) -> Callable[..., Settings]:
    """Settings serving a copy of the explain version as version 1."""
    base = tmp_path / "explain-base"
    base.mkdir()
    publish_version(base, explain_dir, 1)

    def _make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"model_base_path": base, "reload_interval_seconds": 0}
        values.update(overrides)
        return Settings(**values)

    return _make


@pytest.fixture
def explain_client(explain_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(explain_settings())) as client:
        yield client


def _texts() -> list[str]:
    """The hand-written behavioural set plus constructed edge cases: many kinds of text."""
    behavioural_set = REPO_ROOT / "training" / "behaviour" / "written_2026_11.jsonl"
    lines = behavioural_set.read_text().splitlines()
    texts = [json.loads(line)["text"] for line in lines if line.strip()][:80]
    return [
        *texts,
        "I did not like it, but the music was great!",
        "Great.<br /><br />Terrible!!! Don't watch it; it's not worth it.",
        "ÉNORME film — très bien",
        f"{UNSEEN[0]} {UNSEEN[1]}",
        "?!...",
        "a " * 300,
    ]


def _explain(client: TestClient, texts: list[str], chunk: int = 16) -> list[dict[str, Any]]:
    explanations: list[dict[str, Any]] = []
    for start in range(0, len(texts), chunk):
        response = client.post("/v1/explain", json={"texts": texts[start : start + chunk]})
        assert response.status_code == 200, response.text
        explanations.extend(response.json()["explanations"])
    return explanations


def _ngrams(card: ModelCard) -> int:
    return int((card.hyperparameters or {})["ngrams"])


def _unit_count(words: int, ngrams: int) -> int:
    """Units of a text of `words` known-or-not words: words, then pairs, then triples..."""
    return sum(max(words - width + 1, 0) for width in range(1, ngrams + 1))


def test_explanations_are_exact_and_agree_with_predict(
    explain_client: TestClient, card: ModelCard
) -> None:
    texts = _texts()
    explanations = _explain(explain_client, texts)
    predicted = explain_client.post("/v1/predict/batch", json={"texts": texts}).json()
    assert len(explanations) == len(texts) == len(predicted["predictions"])
    for explanation, prediction in zip(explanations, predicted["predictions"], strict=True):
        contributions = [unit["contribution"] for unit in explanation["units"]]
        # The graph sums float32 shares in its own order: on hundreds of units the float64
        # sum differs by a few float32 ulps of the logit, hence rel= beside abs=.
        assert sum(contributions) + explanation["bias"] == pytest.approx(
            explanation["raw_logit"], abs=1e-5, rel=1e-5
        )
        assert explanation["logit"] == pytest.approx(
            explanation["raw_logit"] / explanation["temperature"], rel=1e-5, abs=1e-6
        )
        assert explanation["probability"] == pytest.approx(prediction["probability"], abs=1e-6)
        assert explanation["label"] == prediction["label"]
        accounting = explanation["input"]
        # Masked models average exactly the real units: one per scored unit (an empty text
        # scores one [UNK] and counts none).
        assert len(explanation["units"]) == max(accounting["token_count"], 1)
        assert 0 <= accounting["oov_count"] <= accounting["token_count"]
        assert accounting["oov_share"] == pytest.approx(
            accounting["oov_count"] / max(accounting["token_count"], 1), abs=1e-6
        )
    by_text = dict(zip(texts, explanations, strict=True))
    punctuation_only = by_text["?!..."]
    assert [unit["unit"] for unit in punctuation_only["units"]] == ["[UNK]"]
    assert punctuation_only["input"]["token_count"] == 0


def test_units_follow_the_documented_order(explain_client: TestClient, card: ModelCard) -> None:
    """Words in text order, lower-cased, NOT_ in a negation's scope; then pairs, triples..."""
    reply = explain_client.post("/v1/explain", json={"text": "I did NOT like it"}).json()
    units = [unit["unit"] for unit in reply["explanations"][0]["units"]]
    words = ["i", "did", "not", "NOT_like", "NOT_it"]
    pairs = ["i did", "did not", "not NOT_like", "NOT_like NOT_it"]
    triples = ["i did not", "did not NOT_like", "not NOT_like NOT_it"]
    assert units == [words, words + pairs, words + pairs + triples][_ngrams(card) - 1]
    assert reply["model_version"] == "1"


def test_oov_accounting_on_constructed_texts(explain_client: TestClient, card: ModelCard) -> None:
    all_unseen, half = _explain(explain_client, [" ".join(UNSEEN), f"great {UNSEEN[0]}"])
    # Three unseen words and the n-grams over them, all unknown, the words shown as typed.
    units = _unit_count(3, _ngrams(card))
    assert all_unseen["input"] == {
        "token_count": units, "truncated": False, "oov_count": units, "oov_share": 1.0
    }  # fmt: skip
    assert [unit["unit"] for unit in all_unseen["units"][:3]] == list(UNSEEN)
    # "great" is known; the unseen word and the pair containing it are not.
    assert half["input"]["token_count"] == 3
    assert half["input"]["oov_count"] == 2
    assert half["input"]["oov_share"] == pytest.approx(2 / 3, abs=1e-6)


def test_truncation_accounting_at_the_sequence_length(
    explain_client: TestClient, card: ModelCard
) -> None:
    hyperparameters = card.hyperparameters or {}
    length = int(hyperparameters["sequence_length"])
    ngrams = int(hyperparameters["ngrams"])

    def units(words: int) -> int:  # words, then pairs, then triples...
        return sum(max(words - width + 1, 0) for width in range(1, ngrams + 1))

    fits = max(w for w in range(1, length + 1) if units(w) <= length)
    over = fits + 5
    short, long = _explain(explain_client, ["good " * fits, "good " * over])
    assert short["input"]["truncated"] is False
    assert short["input"]["token_count"] == units(fits)
    assert long["input"]["truncated"] is True
    assert long["input"]["token_count"] == length
    assert len(long["units"]) == length
    # The first units kept are the words, in order; pairs fill what is left.
    assert [unit["unit"] for unit in long["units"][:over]] == ["good"] * over


def test_explain_limits(
    explain_settings: Callable[..., Settings], assert_error: Callable[..., Any]
) -> None:
    settings = explain_settings(max_explain_items=2, max_text_chars=50)
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/explain", json={"texts": ["good", "bad"]}).status_code == 200
        assert_error(
            client.post("/v1/explain", json={"texts": ["good"] * 3}), 413, "payload_too_large"
        )
        body = assert_error(
            client.post("/v1/explain", json={"text": "secret words " * 10}), 422, "invalid_input"
        )
        assert "secret" not in body["error"]["message"]
        for bad in ({}, {"text": "a", "texts": ["b"]}, {"text": " "}, {"texts": []}, {"t": 1}):
            assert_error(client.post("/v1/explain", json=bad), 422, "invalid_input")


def test_explain_needs_the_api_key_and_the_page_does_not(
    explain_settings: Callable[..., Settings], assert_error: Callable[..., Any]
) -> None:
    with TestClient(create_app(explain_settings(api_key="k3y"))) as client:
        assert_error(client.post("/v1/explain", json={"text": "good"}), 401, "unauthorized")
        ok = client.post("/v1/explain", json={"text": "good"}, headers={"X-API-Key": "k3y"})
        assert ok.status_code == 200
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")


def test_explain_runs_on_its_own_thread(
    explain_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TensorFlow call never runs on the event loop's thread."""
    threads: list[str] = []
    real = explain_module.explain_blocking

    def recording(*args: Any) -> list[dict[str, Any]]:
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(explain_module, "explain_blocking", recording)
    assert explain_client.post("/v1/explain", json={"text": "good"}).status_code == 200
    assert len(threads) == 1 and threads[0].startswith("explain")


def test_versions_without_the_signature_answer_501(
    tmp_path: Path, assert_error: Callable[..., Any]
) -> None:
    base = tmp_path / "legacy"
    base.mkdir()
    publish_version(base, legacy_version_dir(), 1)
    settings = Settings(model_base_path=base, reload_interval_seconds=0)
    with TestClient(create_app(settings)) as client:
        body = assert_error(
            client.post("/v1/explain", json={"text": "good"}), 501, "explain_unavailable"
        )
        assert "explain" in body["error"]["message"] and "version 1" in body["error"]["message"]
        # Scoring still works, without input metrics (no score signature).
        assert client.post("/v1/predict", json={"text": "good"}).status_code == 200
        assert metric_sum(client, "sentiment_input_tokens_count") == 0.0


def test_explain_is_503_before_a_model_is_ready(
    tmp_path: Path, assert_error: Callable[..., Any]
) -> None:
    settings = Settings(model_base_path=tmp_path / "empty", reload_interval_seconds=0)
    with TestClient(create_app(settings)) as client:
        assert_error(client.post("/v1/explain", json={"text": "good"}), 503, "not_ready")


def test_input_metrics_move_with_scored_texts_only(
    explain_client: TestClient, card: ModelCard
) -> None:
    length = int((card.hyperparameters or {})["sequence_length"])
    # Every series is the version's that scored (the fixture serves one: version 1).
    names: list[tuple[str, dict[str, str]]] = [
        ("sentiment_predicted_probability_count", {}),
        ("sentiment_input_tokens_count", {}),
        ("sentiment_input_oov_share_count", {}),
        ("sentiment_input_truncated_texts_total", {}),
        ("sentiment_input_oov_share_bucket", {"le": "0.0"}),
        ("sentiment_input_tokens_bucket", {"le": "4.0"}),
        ("sentiment_input_tokens_sum", {}),
    ]

    def read() -> dict[str, float]:
        return {
            name + str(labels): metric_sum(explain_client, name, version="1", **labels)
            for name, labels in names
        }

    before = read()
    texts = ["A wonderful film.", " ".join(UNSEEN), "good " * length]
    reply = explain_client.post("/v1/predict/batch", json={"texts": texts})
    assert reply.status_code == 200
    after = read()
    delta = {name: after[name] - before[name] for name in after}
    assert delta["sentiment_predicted_probability_count{}"] == 3
    assert delta["sentiment_input_tokens_count{}"] == 3
    assert delta["sentiment_input_oov_share_count{}"] == 3
    assert delta["sentiment_input_truncated_texts_total{}"] == 1
    assert delta["sentiment_input_oov_share_bucket{'le': '0.0'}"] == 2  # two: no OOV unit
    three_words = _unit_count(3, _ngrams(card))  # units of each three-word text (at least 5)
    assert delta["sentiment_input_tokens_bucket{'le': '4.0'}"] == 0
    assert delta["sentiment_input_tokens_sum{}"] == 2 * three_words + length

    # Explanations (the playground explains as its user types) are not traffic.
    explain_client.post("/v1/explain", json={"texts": texts})
    tokens_after = after["sentiment_input_tokens_count{}"]
    assert metric_sum(explain_client, "sentiment_input_tokens_count") == tokens_after


def test_explained_texts_count_as_predictions_by_label(explain_client: TestClient) -> None:
    def predicted(label: str) -> float:
        return _metric_labelled(explain_client, "sentiment_predictions_total", label)

    before = {label: predicted(label) for label in ("positive", "negative")}
    reply = explain_client.post("/v1/explain", json={"texts": ["A wonderful film.", "Awful."]})
    assert reply.status_code == 200
    labels = [explanation["label"] for explanation in reply.json()["explanations"]]
    for label in ("positive", "negative"):
        assert predicted(label) - before[label] == labels.count(label)


def _metric_labelled(client: TestClient, name: str, label: str) -> float:
    return metric_sum(client, name, label=label)


@pytest.mark.parametrize("size", [5, 520])  # a few values go one by one, more through numpy
def test_bulk_histogram_equals_observing_one_by_one(size: int) -> None:
    """``observe_many`` bins exactly like ``observe`` (``le``: a bound is in its bucket)."""
    rng = np.random.default_rng(0)
    probabilities = np.concatenate(
        [np.array(PROBABILITY_BUCKETS, np.float32), rng.random(500).astype(np.float32)]
    )[:size]
    tokens = rng.integers(0, 3000, len(probabilities))
    oov = np.minimum(rng.integers(0, 50, len(probabilities)), tokens)
    batch = InputBatch(probabilities, tokens, oov, tokens > 2000)
    bulk_registry = CollectorRegistry()
    deferred = DeferredObservations()
    InputMetrics(bulk_registry, deferred).observer("7")(batch)
    deferred.flush()

    one_by_one = CollectorRegistry()
    reference = InputMetrics(one_by_one, DeferredObservations())
    for histogram, values in (
        (reference.probability, batch.probability),
        (reference.token_count, batch.token_count),
        (reference.oov_share, batch.oov_share),
    ):
        for value in values.tolist():
            Histogram.observe(histogram.labels("7", "rest"), value)
    reference.truncated.labels("7", "rest").inc(int(np.count_nonzero(batch.truncated)))

    bulk, single = registry_samples(bulk_registry), registry_samples(one_by_one)
    assert bulk.keys() == single.keys()
    for key, value in single.items():
        assert bulk[key] == pytest.approx(value, rel=1e-9), key


def test_playground_page_is_self_contained(explain_client: TestClient) -> None:
    page = explain_client.get("/")
    assert page.status_code == 200
    html = page.text
    # Offline / air-gapped: nothing is fetched from anywhere but this service's own API.
    assert "http://" not in html and "https://" not in html
    assert "<script src" not in html and "<link" not in html
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for needed in ('id="text"', 'id="api-key"', 'id="file"', "/v1/explain", "/v1/predict/batch"):
        assert needed in html
