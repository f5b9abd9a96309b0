"""HTTP routes: validate the body, hand texts to the batcher, shape the answer.

Prediction routes are ``async def`` and only await the batcher, so no request costs a
thread-pool hop; the model runs on the batcher's own thread. Answers are serialized with
orjson straight into a Response, skipping FastAPI's response-model pass on the hot path
(the ``response_model`` declarations still document them in OpenAPI).

``install_routes`` registers the routes on the app itself, prediction routes first: an
``include_router`` would wrap every request in a per-router dispatch layer, and the router
tries routes in order, so the hot path matches on its first attempt.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import orjson
from fastapi import Depends, FastAPI, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.responses import Response

from app.core.errors import NotReadyError, UnauthorizedError
from app.core.explainer import install_explain_route
from app.core.predictor import Predictor
from app.core.scoring import check_batch_size as _check_batch_size
from app.core.scoring import count_labels as _count_labels
from app.core.scoring import labels_for as _labels
from app.core.scoring import score_texts
from app.core.scoring import service_of as _service
from app.http.playground import install_playground_route
from app.metrics import CONTENT_TYPE_LATEST
from app.protocols import open_inference as inference_protocol
from app.protocols import tfserving
from app.protocols.native_schemas import (
    BatchPredictRequest,
    BatchPredictResponse,
    ErrorResponse,
    HealthResponse,
    PredictRequest,
    PredictResponse,
    ReadyResponse,
)
from app.service import DRAINING_STATE_KEY, Service
from contract import ModelCard

_JSON = "application/json"


def _error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse} for status in statuses}


# 400: a body that is not even text (invalid UTF-8), which the framework rejects itself.
_PREDICTION_ERRORS = _error_docs(400, 401, 413, 422, 429, 503)


def _json(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type=_JSON)


async def _score(service: Service, texts: Sequence[str]) -> tuple[list[float], Predictor]:
    """Score via the shared path (limits, micro-batcher) every prediction route takes."""
    scored = await score_texts(service, texts)
    return scored.probabilities, scored.model


async def predict(body: PredictRequest, request: Request) -> Response:
    """P(positive) and label for one review; concurrent calls share model calls."""
    service = _service(request)
    probabilities, predictor = await _score(service, (body.text,))
    probability = probabilities[0]
    labels = _labels(probabilities, predictor)
    _count_labels(service, labels)
    label = labels[0]
    return _json(
        {"label": label, "probability": probability, "model_version": predictor.version_label}
    )


async def predict_batch(body: BatchPredictRequest, request: Request) -> Response:
    """One prediction per text, in input order, all from the same model version."""
    service = _service(request)
    _check_batch_size(service, len(body.texts))
    probabilities, predictor = await _score(service, body.texts)
    labels = _labels(probabilities, predictor)
    _count_labels(service, labels)
    predictions = [
        {"label": label, "probability": probability}
        for label, probability in zip(labels, probabilities, strict=True)
    ]
    return _json({"predictions": predictions, "model_version": predictor.version_label})


async def model_card(request: Request) -> Response:
    """The live version's ``model_card.json`` as published by training."""
    predictor = _service(request).registry.require_live()
    return _json(predictor.card_document)


async def healthz() -> Response:
    """Always 200 while the process serves HTTP, even before a model is loaded."""
    return _json({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 only when a verified, warm model is live and the process is not stopping.

    The server marks the request state at SIGTERM (``app.http.connections.DrainingServer``), so
    load balancers take the pod out of rotation at once while in-flight requests finish.
    """
    if request.scope.get("state", {}).get(DRAINING_STATE_KEY):
        raise NotReadyError("The service is shutting down.")
    live = _service(request).registry.require_live()
    return _json({"status": "ready", "model_version": live.version_label})


async def metrics(request: Request) -> Response:
    """Metrics in the Prometheus text format."""
    return Response(_service(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


def api_key_dependency(expected_key: str) -> Any:
    """A dependency accepting ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``."""
    expected = expected_key.encode()

    async def require_api_key(
        api_key: str | None = Security(_api_key_header),
        bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
    ) -> None:
        presented = api_key if api_key is not None else (bearer.credentials if bearer else None)
        if presented is None or not hmac.compare_digest(presented.encode(), expected):
            raise UnauthorizedError()

    return Depends(require_api_key)


class RouteSpec(NamedTuple):
    """One model route: where, what handles it, and what OpenAPI says about it."""

    path: str
    endpoint: Callable[..., Awaitable[Response]]
    method: str
    response_model: type[BaseModel]
    responses: dict[int | str, dict[str, Any]]
    summary: str


_MODEL_ROUTES = (
    RouteSpec(
        "/v1/predict", predict, "POST", PredictResponse, _PREDICTION_ERRORS, "Score one text"
    ),
    RouteSpec(
        "/v1/predict/batch",
        predict_batch,
        "POST",
        BatchPredictResponse,
        _PREDICTION_ERRORS,
        "Score several texts",
    ),
    RouteSpec(
        "/v1/model",
        model_card,
        "GET",
        ModelCard,
        _error_docs(401, 503),
        "Model card of the live version",
    ),
)


def install_routes(app: FastAPI, api_key: str | None) -> None:
    """Register every route on ``app``; with ``api_key`` the model routes require it."""
    guarded = [api_key_dependency(api_key)] if api_key else None
    for route in _MODEL_ROUTES:
        app.add_api_route(
            route.path,
            route.endpoint,
            methods=[route.method],
            response_model=route.response_model,
            responses=route.responses,
            summary=route.summary,
            tags=["predictions"],
            dependencies=guarded,
        )
    tfserving.install_routes(app, guarded)
    inference_protocol.install_routes(app, guarded)
    install_explain_route(app, guarded)
    install_playground_route(app)  # static: no key; its fetches send one
    app.add_api_route(
        "/healthz",
        healthz,
        methods=["GET"],
        response_model=HealthResponse,
        summary="Liveness",
        tags=["operations"],
    )
    app.add_api_route(
        "/readyz",
        readyz,
        methods=["GET"],
        response_model=ReadyResponse,
        responses=_error_docs(503),
        summary="Readiness",
        tags=["operations"],
    )
    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
        tags=["operations"],
    )
