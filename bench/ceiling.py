"""The HTTP ceiling: the service's framework and request validation, with a constant answer.

Whatever the real service adds per request (middleware, metrics, queueing, batching,
TensorFlow) can only cost more than this app, so its requests/s and latency are the yardstick
the benchmark divides by. To be a fair yardstick it does everything the service's
`POST /v1/predict` route does except scoring: FastAPI, the very same pydantic request model
(`app.schemas.PredictRequest`), the same settings-dependent length check, and an answer of the
same shape serialised the same way (orjson into a plain Response).

Run it like the service: `uvicorn bench.ceiling:create_app --factory`.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI
from starlette.responses import Response

from app.errors import InvalidInputError, error_response
from app.schemas import PredictRequest, PredictResponse
from app.settings import Settings

_JSON = "application/json"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ceiling app; no I/O, no model."""
    max_text_chars = (settings or Settings()).max_text_chars
    app = FastAPI(title="bench ceiling", docs_url=None, redoc_url=None, openapi_url=None)
    answer = {"label": "positive", "probability": 0.5, "model_version": "1"}

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(orjson.dumps({"status": "ok"}), media_type=_JSON)

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(orjson.dumps({"status": "ready", "model_version": "1"}), media_type=_JSON)

    @app.post("/v1/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> Response:
        if len(body.text) > max_text_chars:
            return error_response(InvalidInputError("too long"))
        return Response(orjson.dumps(answer), media_type=_JSON)

    return app
