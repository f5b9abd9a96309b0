"""Request and response bodies; their examples make up the OpenAPI documentation.

Limits that depend on settings (characters per text, texts per batch) are checked in the
routes, because a schema class is shared by every app instance in the process.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _reject_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("text must not be empty or whitespace only")
    return text


ReviewText = Annotated[str, AfterValidator(_reject_blank)]
Label = Literal["positive", "negative"]

_EXAMPLE_TEXT = "This movie was wonderful, I loved every minute of it."


class PredictRequest(BaseModel):
    """One text to score."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": _EXAMPLE_TEXT}]}
    )

    text: ReviewText = Field(description="Raw English review text.")


class BatchPredictRequest(BaseModel):
    """Several texts to score in one request."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"texts": [_EXAMPLE_TEXT, "Terrible acting, a waste of time."]}]
        },
    )

    texts: list[ReviewText] = Field(min_length=1, description="Raw English review texts.")


class Prediction(BaseModel):
    """The score of one text."""

    label: Label = Field(description="'positive' when probability >= the decision threshold.")
    probability: float = Field(ge=0, le=1, description="P(positive) from the model.")


class PredictResponse(Prediction):
    """The score of one text and the model version that produced it."""

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [{"label": "positive", "probability": 0.9123, "model_version": "1"}]
        },
    )

    model_version: str = Field(description="Version directory of the model that scored it.")


class BatchPredictResponse(BaseModel):
    """One prediction per input text, in input order."""

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "predictions": [
                        {"label": "positive", "probability": 0.9123},
                        {"label": "negative", "probability": 0.0836},
                    ],
                    "model_version": "1",
                }
            ]
        },
    )

    predictions: list[Prediction]
    model_version: str = Field(description="Version of the model that scored every text.")


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    status: Literal["ready"] = "ready"
    model_version: str


class ErrorDetail(BaseModel):
    type: str = Field(description="Machine-readable error type, e.g. 'invalid_input'.")
    message: str = Field(description="Human-readable explanation; never echoes input text.")


class ErrorResponse(BaseModel):
    """The one error shape every failing request gets."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"error": {"type": "invalid_input", "message": "text: Field required"}}]
        }
    )

    error: ErrorDetail
