"""The ceiling app validates like the service and answers in the service's shape.

If the ceiling skipped validation it would be an unfairly high yardstick; if it answered a
different shape the byte counts on the wire would differ. Both are checked here.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.protocols.native_schemas import PredictResponse
from app.settings import Settings
from bench.ceiling import create_app


def test_ceiling_answers_the_service_response_shape() -> None:
    with TestClient(create_app()) as client:
        response = client.post("/v1/predict", json={"text": "A fine film."})

    assert response.status_code == 200
    PredictResponse.model_validate(response.json())
    assert set(response.json()) == set(PredictResponse.model_fields)


def test_ceiling_rejects_what_the_service_rejects() -> None:
    settings = Settings(max_text_chars=10)
    with TestClient(create_app(settings)) as client:
        blank = client.post("/v1/predict", json={"text": "   "})
        missing = client.post("/v1/predict", json={})
        extra = client.post("/v1/predict", json={"text": "ok", "other": 1})
        too_long = client.post("/v1/predict", json={"text": "x" * 11})
        malformed = client.post(
            "/v1/predict", content=b"{not json", headers={"Content-Type": "application/json"}
        )

    assert [r.status_code for r in (blank, missing, extra, too_long, malformed)] == [422] * 5
