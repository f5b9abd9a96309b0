"""The native API: ``/v1/predict``, ``/v1/predict/batch``, ``/v1/explain`` and ``/v1/model``.

Bodies are validated by the pydantic models in ``app.protocols.native_schemas``; errors have
the documented shape ``{"error": {"type": ..., "message": ...}}``. Each route is a thin call of
the scoring core, which resolves the version once, applies the limits and the label rule and
counts the labels.

A request may name its version with ``?version=6`` or ``?label=canary``; without either it
gets the ``stable`` label (or the canary, for the canary's share). The query string is only
parsed when there is one, so an unversioned request pays nothing for the option; OpenAPI
still documents both parameters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.core.errors import InvalidInputError
from app.core.predictor import Predictor
from app.core.registry import DEFAULT_VERSION, VersionChoice
from app.http.errors import ErrorResponse
from app.protocols.base import ProtocolAdapter, RouteSpec, error_docs, json_response
from app.protocols.native_schemas import (
    BatchPredictRequest,
    BatchPredictResponse,
    ExplainRequest,
    ExplainResponse,
    PredictRequest,
    PredictResponse,
    reflect_setting_limits,
)
from contract import ModelCard

_TAG = "predictions"
# 400: a body that is not even text (invalid UTF-8), which the framework rejects itself;
# 404: a version or label that is not loaded.
_PREDICTION_ERRORS = error_docs(ErrorResponse, (400, 401, 404, 413, 422, 429, 503))
_VERSION_TEXT = re.compile(r"[0-9]{1,18}")
_LABEL_TEXT = re.compile(r"[^/:]{1,64}")
# The two query parameters, as OpenAPI documents them (parsed by ``version_choice``).
_VERSION_PARAMETERS: dict[str, Any] = {
    "parameters": [
        {
            "name": "version",
            "in": "query",
            "required": False,
            "description": (
                "Score with this loaded model version (with label too: only if the label names it)."
            ),
            "schema": {"type": "string", "pattern": f"^{_VERSION_TEXT.pattern}$"},
        },
        {
            "name": "label",
            "in": "query",
            "required": False,
            "description": (
                "Score with the version this label names (SENTIMENT_MODEL_VERSION_LABELS; "
                "'stable' always exists)."
            ),
            "schema": {"type": "string", "pattern": f"^{_LABEL_TEXT.pattern}$"},
        },
    ]
}


def version_choice(request: Request) -> VersionChoice:
    """The version the query string asks for (``?version=`` or ``?label=``), else the default."""
    if not request.scope["query_string"]:
        return DEFAULT_VERSION
    query = request.query_params
    version, label = query.get("version"), query.get("label")
    if version is None and label is None:
        return DEFAULT_VERSION
    if version is not None and not _VERSION_TEXT.fullmatch(version):
        raise InvalidInputError("version must be a model version number.")
    if label is not None and not _LABEL_TEXT.fullmatch(label):
        raise InvalidInputError("label must be a version label (1 to 64 characters, no / or :).")
    return VersionChoice(None if version is None else int(version), label)


class NativeProtocol(ProtocolAdapter):
    """Our own routes, in the documented error shape."""

    def _version(self, request: Request) -> Predictor:
        """The version this request gets (404 ``model_not_found`` for one not loaded)."""
        return self.core.resolve(version_choice(request), None, self.request_id(request))

    async def predict(self, request: Request, body: PredictRequest) -> Response:
        """P(positive) and label for one review; concurrent calls share model calls."""
        scores = await self.core.score((body.text,), self._version(request))
        version = scores.predictor.version_label
        return json_response(
            {
                "label": scores.labels[0],
                "probability": scores.probabilities[0],
                "model_version": version,
            },
            version=version,
        )

    async def predict_batch(self, request: Request, body: BatchPredictRequest) -> Response:
        """One prediction per text, in input order, all from the same model version."""
        scores = await self.core.score(body.texts, self._version(request))
        predictions = [
            {"label": label, "probability": probability}
            for label, probability in zip(scores.labels, scores.probabilities, strict=True)
        ]
        version = scores.predictor.version_label
        return json_response(
            {"predictions": predictions, "model_version": version}, version=version
        )

    async def model_card(self, request: Request) -> Response:
        """The ``model_card.json`` of the version asked for (or the default), as published."""
        predictor = self._version(request)
        return json_response(predictor.card_document, version=predictor.version_label)

    async def explain(self, request: Request, body: ExplainRequest) -> Response:
        """Each unit's exact share of the logit, the calibration and the input accounting."""
        explained = await self.core.explain(body.all_texts(), self._version(request))
        version = explained.predictor.version_label
        return json_response(
            {"explanations": explained.explanations, "model_version": version}, version=version
        )

    def routes(self) -> Sequence[RouteSpec]:
        explain_errors = error_docs(ErrorResponse, (400, 401, 404, 413, 422, 429, 501, 503))
        return (
            RouteSpec(
                "/v1/predict",
                self.predict,
                "POST",
                PredictResponse,
                _PREDICTION_ERRORS,
                "Score one text",
                _TAG,
                options={"openapi_extra": _VERSION_PARAMETERS},
            ),
            RouteSpec(
                "/v1/predict/batch",
                self.predict_batch,
                "POST",
                BatchPredictResponse,
                _PREDICTION_ERRORS,
                "Score several texts",
                _TAG,
                options={"openapi_extra": _VERSION_PARAMETERS},
            ),
            RouteSpec(
                "/v1/model",
                self.model_card,
                "GET",
                ModelCard,
                error_docs(ErrorResponse, (401, 404, 422, 503)),
                "Model card of a version (by default the stable one)",
                _TAG,
                options={"openapi_extra": _VERSION_PARAMETERS},
            ),
            RouteSpec(
                "/v1/explain",
                self.explain,
                "POST",
                ExplainResponse,
                explain_errors,
                "Explain scores: each unit's exact share of the logit",
                _TAG,
                options={"openapi_extra": _VERSION_PARAMETERS},
            ),
        )

    def describe(self, document: dict[str, Any]) -> None:
        """This app's text and batch limits in its OpenAPI document."""
        settings = self.core.settings
        reflect_setting_limits(
            document,
            max_text_chars=settings.max_text_chars,
            max_batch_items=settings.max_batch_items,
            max_explain_items=settings.max_explain_items,
        )
