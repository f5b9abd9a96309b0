"""The native API: ``/v1/predict``, ``/v1/predict/batch``, ``/v1/explain`` and ``/v1/model``.

Bodies are validated by the pydantic models in ``app.protocols.native_schemas``; errors have
the documented shape ``{"error": {"type": ..., "message": ...}}``. Each route is a thin call of
the scoring core, which resolves the live version once, applies the limits and the label rule
and counts the labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.responses import Response

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
# 400: a body that is not even text (invalid UTF-8), which the framework rejects itself.
_PREDICTION_ERRORS = error_docs(ErrorResponse, (400, 401, 413, 422, 429, 503))


class NativeProtocol(ProtocolAdapter):
    """Our own routes, in the documented error shape."""

    async def predict(self, body: PredictRequest) -> Response:
        """P(positive) and label for one review; concurrent calls share model calls."""
        scores = await self.core.score((body.text,))
        return json_response(
            {
                "label": scores.labels[0],
                "probability": scores.probabilities[0],
                "model_version": scores.predictor.version_label,
            }
        )

    async def predict_batch(self, body: BatchPredictRequest) -> Response:
        """One prediction per text, in input order, all from the same model version."""
        scores = await self.core.score(body.texts)
        predictions = [
            {"label": label, "probability": probability}
            for label, probability in zip(scores.labels, scores.probabilities, strict=True)
        ]
        return json_response(
            {"predictions": predictions, "model_version": scores.predictor.version_label}
        )

    async def model_card(self) -> Response:
        """The live version's ``model_card.json`` as published by training."""
        return json_response(self.core.resolve().card_document)

    async def explain(self, body: ExplainRequest) -> Response:
        """Each unit's exact share of the logit, the calibration and the input accounting."""
        explained = await self.core.explain(body.all_texts())
        return json_response(
            {
                "explanations": explained.explanations,
                "model_version": explained.predictor.version_label,
            }
        )

    def routes(self) -> Sequence[RouteSpec]:
        explain_errors = error_docs(ErrorResponse, (400, 401, 413, 422, 429, 501, 503))
        return (
            RouteSpec(
                "/v1/predict",
                self.predict,
                "POST",
                PredictResponse,
                _PREDICTION_ERRORS,
                "Score one text",
                _TAG,
            ),
            RouteSpec(
                "/v1/predict/batch",
                self.predict_batch,
                "POST",
                BatchPredictResponse,
                _PREDICTION_ERRORS,
                "Score several texts",
                _TAG,
            ),
            RouteSpec(
                "/v1/model",
                self.model_card,
                "GET",
                ModelCard,
                error_docs(ErrorResponse, (401, 503)),
                "Model card of the live version",
                _TAG,
            ),
            RouteSpec(
                "/v1/explain",
                self.explain,
                "POST",
                ExplainResponse,
                explain_errors,
                "Explain scores: each unit's exact share of the logit",
                _TAG,
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
