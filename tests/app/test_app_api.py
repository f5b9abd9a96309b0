"""Every route and error path, through the app with its lifespan running and the real model."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Histogram

from app.main import create_app
from app.metrics import BulkHistogram, DeferredObservations, ServiceMetrics
from app.settings import Settings
from tests.app.conftest import registry_samples, wait_until

SECRET_REVIEW = "zq-private-review-marker this film was fine"


def test_healthz_and_readyz_when_model_is_live(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model_version": "1"}


def test_predict_replays_card_samples(
    client: TestClient, model_card: dict[str, Any], api_samples: list[dict[str, Any]]
) -> None:
    threshold = model_card["decision_threshold"]
    for sample in model_card["samples"]:
        if sample not in api_samples:  # the empty text: replayed on load, refused over HTTP
            response = client.post("/v1/predict", json={"text": sample["text"]})
            assert response.status_code == 422
            assert response.json()["error"]["type"] == "invalid_input"
    for sample in api_samples:
        response = client.post("/v1/predict", json={"text": sample["text"]})
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"label", "probability", "model_version"}
        assert body["model_version"] == "1"
        assert body["probability"] == pytest.approx(sample["probability"], abs=1e-5)
        assert body["label"] == ("positive" if body["probability"] >= threshold else "negative")


def test_batch_predictions_keep_input_order(
    client: TestClient, api_samples: list[dict[str, Any]]
) -> None:
    texts = [sample["text"] for sample in api_samples]
    texts = texts + list(reversed(texts))
    response = client.post("/v1/predict/batch", json={"texts": texts})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "1"
    assert len(body["predictions"]) == len(texts)
    for text, prediction in zip(texts, body["predictions"], strict=True):
        single = client.post("/v1/predict", json={"text": text}).json()
        assert prediction["probability"] == pytest.approx(single["probability"], abs=1e-6)
        assert prediction["label"] == single["label"]


def test_model_card_route_returns_live_card(client: TestClient, model_card: dict[str, Any]) -> None:
    response = client.get("/v1/model")
    assert response.status_code == 200
    # The fixture publishes the shipped card under directory 1: the directory is the version.
    assert response.json() == {**model_card, "version": 1}


def test_metrics_count_requests_predictions_and_model(client: TestClient) -> None:
    client.post("/v1/predict", json={"text": "A wonderful, moving film."})
    client.post("/v1/predict", json={"text": ""})
    text = client.get("/metrics").text
    # The request metrics carry the version that answered, none for a refused request.
    answered = 'method="POST",route="/v1/predict",status="200",version="1"'
    assert f"sentiment_http_requests_total{{{answered}}} 1.0" in text
    refused = 'method="POST",route="/v1/predict",status="422",version=""'
    assert f"sentiment_http_requests_total{{{refused}}} 1.0" in text
    assert (
        'sentiment_http_request_duration_seconds_count{route="/v1/predict",version="1"} 1.0' in text
    )
    assert (
        'sentiment_http_request_duration_seconds_count{route="/v1/predict",version=""} 1.0' in text
    )
    assert 'sentiment_model_info{name="sentiment",version="1"} 1.0' in text
    assert 'sentiment_model_reloads_total{outcome="success"} 1.0' in text
    assert "sentiment_model_ready 1.0" in text
    assert "sentiment_batch_size_texts_count" in text
    assert "sentiment_queue_depth 0.0" in text
    predicted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("sentiment_predictions_total{")
    )
    assert predicted == 1.0


def test_request_metrics_are_written_when_idle_at_a_scrape_or_within_the_window() -> None:
    """The event loop tallies requests; the metrics get them in bulk, never much later."""
    metrics = ServiceMetrics()
    labels = {"route": "/v1/predict", "method": "POST", "version": "7"}

    def answered(status: str) -> float:
        sample = metrics.registry.get_sample_value(
            "sentiment_http_requests_total", {**labels, "status": status}
        )
        return sample or 0.0

    async def scenario() -> None:
        metrics.request_started()
        metrics.request_started()
        metrics.request_started()
        assert metrics.registry.get_sample_value("sentiment_http_requests_in_progress") == 3
        metrics.request_finished("/v1/predict", "POST", 200, time.perf_counter(), "7")
        metrics.count_predictions(1, 0, "7")
        assert answered("200") == 0  # two still in flight: tallied, not written yet
        await asyncio.sleep(0.2)  # well past the flush window
        assert answered("200") == 1
        assert metrics.registry.get_sample_value(
            "sentiment_predictions_total", {"label": "positive", "version": "7"}
        )
        metrics.request_finished("/v1/predict", "POST", 200, time.perf_counter(), "7")
        assert 'status="200",version="7"} 2.0' in metrics.render().decode()  # a scrape flushes
        metrics.request_finished("/v1/predict", "POST", 429, time.perf_counter(), "7")
        assert answered("429") == 1  # the last one out: written at once
        assert metrics.registry.get_sample_value("sentiment_http_requests_in_progress") == 0
        latency_count = metrics.registry.get_sample_value(
            "sentiment_http_request_duration_seconds_count",
            {"route": "/v1/predict", "version": "7"},
        )
        assert latency_count == 3

    asyncio.run(scenario())


def test_deferred_observations_are_written_by_the_flush_as_one_by_one() -> None:
    """What another thread queues reaches no metric before ``flush``; then each histogram holds
    exactly what observing the values one by one gives, and counters their summed increments."""
    deferred = DeferredObservations()
    registry, reference = CollectorRegistry(), CollectorRegistry()
    buckets = (1, 2, 4, 8, 16)
    histogram = BulkHistogram("texts", "t", buckets=buckets, registry=registry)
    counter = Counter("truncated", "t", registry=registry)
    one_by_one = Histogram("texts", "t", buckets=buckets, registry=reference)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 20, size) for size in (1, 3, 40, 7)]

    def model_thread() -> None:
        for batch in batches:
            deferred.observe(histogram, batch)
            deferred.observe(histogram, float(batch.size))  # one value, as a batch's size
            deferred.inc(counter, 2)

    thread = threading.Thread(target=model_thread)
    thread.start()
    thread.join()
    assert registry.get_sample_value("texts_count") == 0
    assert registry.get_sample_value("truncated_total") == 0
    deferred.flush()
    for batch in batches:
        for value in [*batch.tolist(), float(batch.size)]:
            one_by_one.observe(value)

    assert registry_samples(registry, "texts") == registry_samples(reference, "texts")
    assert registry.get_sample_value("truncated_total") == 2 * len(batches)
    deferred.flush()  # drained: nothing is written twice
    assert registry_samples(registry, "texts") == registry_samples(reference, "texts")


def test_model_calls_are_written_when_their_request_ends() -> None:
    """A model call's figures, queued by the model thread, are in the metrics once the last
    request in flight ends (the idle flush), with no scrape and no timer."""
    metrics = ServiceMetrics()

    async def scenario() -> None:
        metrics.request_started()
        scored = threading.Thread(target=metrics.observe_batch, args=(5, 0.003))
        scored.start()
        scored.join()
        assert metrics.registry.get_sample_value("sentiment_batch_size_texts_count") == 0
        metrics.request_finished("/v1/predict", "POST", 200, time.perf_counter(), "7")
        assert metrics.registry.get_sample_value("sentiment_batch_size_texts_count") == 1
        assert metrics.registry.get_sample_value("sentiment_batch_size_texts_sum") == 5
        assert metrics.registry.get_sample_value(
            "sentiment_inference_duration_seconds_bucket", {"le": "0.005"}
        )

    asyncio.run(scenario())


def test_openapi_documents_every_route_with_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {
        "/healthz",
        "/readyz",
        "/v1/predict",
        "/v1/predict/batch",
        "/v1/models/{name}:predict",
        "/v1/models/{name}",
        "/v1/model",
        "/metrics",
    } <= set(schema["paths"])
    assert schema["components"]["schemas"]["PredictRequest"]["examples"]
    predict_responses = schema["paths"]["/v1/predict"]["post"]["responses"]
    assert {"200", "413", "422", "429", "503"} <= set(predict_responses)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"text": ""}, "empty"),
        ({"text": " \n\t "}, "whitespace only"),
        ({"text": 5}, "wrong type"),
        ({}, "missing field"),
        ({"text": "fine", "extra": 1}, "unknown field"),
        ({"texts": ["fine"]}, "batch body on the single route"),
    ],
)
def test_predict_rejects_invalid_bodies(
    client: TestClient, assert_error: Callable[..., Any], body: Any, why: str
) -> None:
    assert_error(client.post("/v1/predict", json=body), 422, "invalid_input")


def test_malformed_json_and_wrong_content_type_are_422(
    client: TestClient, assert_error: Callable[..., Any]
) -> None:
    json_header = {"content-type": "application/json"}
    assert_error(
        client.post("/v1/predict", content=b'{"text": "unterminated', headers=json_header),
        422,
        "invalid_input",
    )
    assert_error(
        client.post(
            "/v1/predict", content=b'{"text": "fine"}', headers={"content-type": "text/plain"}
        ),
        422,
        "invalid_input",
    )
    assert_error(client.post("/v1/predict", content=b'{"text": "fine"}'), 422, "invalid_input")


def test_size_limits(
    make_settings: Callable[..., Settings], assert_error: Callable[..., Any]
) -> None:
    settings = make_settings(max_text_chars=50, max_batch_items=3, max_body_bytes=2048)
    with TestClient(create_app(settings)) as client:
        assert_error(client.post("/v1/predict", json={"text": "x" * 51}), 422, "invalid_input")
        assert client.post("/v1/predict", json={"text": "x" * 50}).status_code == 200
        assert_error(
            client.post("/v1/predict/batch", json={"texts": ["ok", "x" * 51]}), 422, "invalid_input"
        )
        assert_error(client.post("/v1/predict/batch", json={"texts": []}), 422, "invalid_input")
        assert_error(
            client.post("/v1/predict/batch", json={"texts": ["a", "b", "c", "d"]}),
            413,
            "payload_too_large",
        )
        # Declared length over the limit: refused before a byte of the body is read.
        assert_error(
            client.post("/v1/predict", json={"text": "y" * 4000}), 413, "payload_too_large"
        )

        # Chunked upload with no Content-Length: counted while it streams.
        def chunks() -> Any:
            yield b'{"text": "'
            for _ in range(10):
                yield b"z" * 512
            yield b'"}'

        assert_error(
            client.post(
                "/v1/predict", content=chunks(), headers={"content-type": "application/json"}
            ),
            413,
            "payload_too_large",
        )
        assert client.get("/healthz").status_code == 200
        metrics = client.get("/metrics").text
        assert 'status="413"' in metrics


def test_unknown_route_and_wrong_method(
    client: TestClient, assert_error: Callable[..., Any]
) -> None:
    assert_error(client.get("/v3/nothing"), 404, "not_found")
    assert_error(client.get("/v1/predict"), 405, "method_not_allowed")


def test_errors_never_echo_review_text(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    responses = [
        client.post("/v1/predict", json={"text": SECRET_REVIEW, "extra": SECRET_REVIEW}),
        client.post("/v1/predict", json={"text": [SECRET_REVIEW]}),
        client.post(
            "/v1/predict",
            content=('{"text": "' + SECRET_REVIEW).encode(),
            headers={"content-type": "application/json"},
        ),
        client.post("/v1/predict/batch", json={"texts": [SECRET_REVIEW, "  "]}),
    ]
    for response in responses:
        assert response.status_code == 422
        assert "zq-private" not in response.text
    assert "zq-private" not in caplog.text


def test_not_ready_without_a_model_then_ready_when_one_is_published(
    tmp_path: Path, publish_into: Callable[..., Path], assert_error: Callable[..., Any]
) -> None:
    empty_base = tmp_path / "empty"
    empty_base.mkdir()
    settings = Settings(model_base_path=empty_base, reload_interval_seconds=0.1)
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        not_ready = client.get("/readyz")
        assert_error(not_ready, 503, "not_ready")
        assert not_ready.headers["retry-after"] == "1"
        assert_error(client.post("/v1/predict", json={"text": "good"}), 503, "not_ready")
        assert_error(client.post("/v1/predict/batch", json={"texts": ["good"]}), 503, "not_ready")
        assert_error(client.get("/v1/model"), 503, "not_ready")
        assert "sentiment_model_ready 0.0" in client.get("/metrics").text

        publish_into(empty_base, 7)
        assert wait_until(lambda: client.get("/readyz").status_code == 200, seconds=20)
        assert client.post("/v1/predict", json={"text": "good"}).json()["model_version"] == "7"


def test_startup_falls_back_past_a_broken_newest_version(
    make_settings: Callable[..., Settings], publish_broken: Callable[[int, str], Path]
) -> None:
    publish_broken(2, "tampered_sample")
    with TestClient(create_app(make_settings())) as client:
        assert client.get("/readyz").json()["model_version"] == "1"
        metrics = client.get("/metrics").text
        assert 'sentiment_model_reloads_total{outcome="failure"} 1.0' in metrics


def test_only_broken_versions_mean_not_ready(
    tmp_path: Path, publish_into: Callable[..., Path], assert_error: Callable[..., Any]
) -> None:
    base = tmp_path / "broken"
    base.mkdir()
    publish_into(base, 1, "tampered_sample")
    publish_into(base, 2, "missing_graph")
    with TestClient(
        create_app(Settings(model_base_path=base, reload_interval_seconds=0))
    ) as client:
        assert_error(client.get("/readyz"), 503, "not_ready")
        assert_error(client.post("/v1/predict", json={"text": "good"}), 503, "not_ready")


def test_api_key_guards_everything_but_health_and_metrics(
    make_settings: Callable[..., Settings], assert_error: Callable[..., Any]
) -> None:
    with TestClient(create_app(make_settings(api_key="s3cret"))) as client:
        body = {"text": "good"}
        assert_error(client.post("/v1/predict", json=body), 401, "unauthorized")
        assert_error(
            client.post("/v1/predict", json=body, headers={"X-API-Key": "wrong"}),
            401,
            "unauthorized",
        )
        assert_error(
            client.post("/v1/predict/batch", json={"texts": ["good"]}), 401, "unauthorized"
        )
        assert_error(client.get("/v1/model"), 401, "unauthorized")
        # The key is checked before the body: no validation detail leaks to anonymous callers.
        assert_error(client.post("/v1/predict", json={"text": ""}), 401, "unauthorized")
        ok_header = client.post("/v1/predict", json=body, headers={"X-API-Key": "s3cret"})
        assert ok_header.status_code == 200
        ok_bearer = client.post(
            "/v1/predict", json=body, headers={"Authorization": "Bearer s3cret"}
        )
        assert ok_bearer.status_code == 200
        for path in ("/healthz", "/readyz", "/metrics"):
            assert client.get(path).status_code == 200
