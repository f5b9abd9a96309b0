"""Two apps with different settings in one process: each keeps its own limits, key, model,
metrics and threads, and stopping one leaves the other serving."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.settings import Settings
from contract import version_dirs
from tests.app.conftest import publish_version
from tests.paths import SHIPPED_MODEL_BASE

TEXTS = ["A wonderful film, I loved it.", "Dull, badly acted and far too long.", "Fine."]


def _threads(prefix: str) -> int:
    return sum(thread.name.startswith(prefix) for thread in threading.enumerate())


def _sample(client: TestClient, name: str, **labels: str) -> float:
    """A sample's value in the app's /metrics exposition, summed over the series with these
    labels (so over the version label when not given; 0 when absent)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def test_two_apps_with_different_settings_do_not_interfere(tmp_path: Path) -> None:
    shipped = [path for _, path in version_dirs(SHIPPED_MODEL_BASE)]
    base_a, base_b = tmp_path / "a", tmp_path / "b"
    base_a.mkdir()
    base_b.mkdir()
    publish_version(base_a, shipped[-1], 1)
    publish_version(base_b, shipped[-2], 5)
    app_a = create_app(
        Settings(
            model_base_path=base_a, reload_interval_seconds=0, max_batch_items=2, api_key="key-a"
        )
    )
    app_b = create_app(
        Settings(
            model_base_path=base_b, reload_interval_seconds=0, max_batch_items=5, model_name="other"
        )
    )
    key = {"X-API-Key": "key-a"}
    batch = {"texts": TEXTS}
    batchers, explainers = _threads("model-batcher"), _threads("explain")
    with TestClient(app_a) as a:
        with TestClient(app_b) as b:
            assert _threads("model-batcher") == batchers + 2
            # Limits and key are each app's own.
            assert a.post("/v1/predict/batch", json=batch, headers=key).status_code == 413
            assert a.post("/v1/predict/batch", json={"texts": TEXTS[:2]}).status_code == 401
            answer_b = b.post("/v1/predict/batch", json=batch)
            assert answer_b.status_code == 200, answer_b.text
            assert len(answer_b.json()["predictions"]) == 3
            # So are the model, its name and its version.
            assert a.get("/readyz").json()["model_version"] == "1"
            assert b.get("/readyz").json()["model_version"] == "5"
            assert a.get("/v1/models/sentiment", headers=key).status_code == 200
            assert a.get("/v1/models/other", headers=key).status_code == 404
            assert b.get("/v1/models/other").json()["model_version_status"][0]["version"] == "5"
            assert b.get("/v1/models/sentiment").json() == {
                "error": "Could not find any versions of the requested model."
            }
            # And what each app documents.
            for client, limit in ((a, 2), (b, 5)):
                schema = client.get("/openapi.json").json()["components"]["schemas"]
                assert schema["BatchPredictRequest"]["properties"]["texts"]["maxItems"] == limit
            # Explanations run on each app's own thread.
            assert a.post("/v1/explain", json={"text": "good"}, headers=key).status_code == 200
            assert b.post("/v1/explain", json={"text": "good"}).status_code == 200
            assert _threads("explain") == explainers + 2
            # Metrics count each app's own requests and predictions.
            route = {"method": "POST", "route": "/v1/predict/batch"}
            assert _sample(a, "sentiment_http_requests_total", **route, status="413") == 1
            assert _sample(a, "sentiment_http_requests_total", **route, status="200") == 0
            assert _sample(b, "sentiment_http_requests_total", **route, status="200") == 1
            assert _sample(b, "sentiment_http_requests_total", **route, status="413") == 0
            predicted_b = sum(
                _sample(b, "sentiment_predictions_total", label=label)
                for label in ("positive", "negative")
            )
            assert predicted_b == 3 + 1  # the batch and the explained text
        # b has stopped: its threads are gone, and a still serves.
        assert _threads("model-batcher") == batchers + 1
        assert _threads("explain") == explainers + 1
        answer_a = a.post("/v1/predict/batch", json={"texts": TEXTS[:2]}, headers=key)
        assert answer_a.status_code == 200
        assert answer_a.json()["model_version"] == "1"
    assert _threads("model-batcher") == batchers
    assert _threads("explain") == explainers
