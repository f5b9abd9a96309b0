"""The native API's request and response bodies; their examples make up the OpenAPI documentation.

The schema says exactly what the service accepts (``app.core.texts``: a text must contain a
character ``str.strip`` keeps and no NUL, stated as ``TEXT_PATTERN``). Limits that depend on
settings (characters per text, texts per request) are checked by the scoring core, because a
schema class is shared by every app instance in the process; ``reflect_setting_limits`` writes
an app's values into its OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.predictor import Label
from app.protocols.base import EXAMPLE_TEXT, NonBlankText

# Our own routes' text.
PredictText = Annotated[
    NonBlankText,
    Field(
        description=(
            "Raw English review text: at least one non-whitespace character and at most "
            "SENTIMENT_MAX_TEXT_CHARS characters (default 20000; longer is 422)."
        ),
    ),
]


class PredictRequest(BaseModel):
    """One text to score."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": EXAMPLE_TEXT}]}
    )

    text: PredictText


class BatchPredictRequest(BaseModel):
    """Several texts to score in one request."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"texts": [EXAMPLE_TEXT, "Terrible acting, a waste of time."]}]
        },
    )

    texts: list[PredictText] = Field(
        min_length=1,
        description=(
            "Raw English review texts: at least one, at most SENTIMENT_MAX_BATCH_ITEMS "
            "(default 256; more is 413)."
        ),
    )


def reflect_setting_limits(
    document: dict[str, Any],
    *,
    max_text_chars: int,
    max_batch_items: int,
    max_explain_items: int,
) -> dict[str, Any]:
    """Write one app's limits into its OpenAPI ``document`` (maxLength, maxItems)."""
    schemas = document.get("components", {}).get("schemas", {})
    explain = schemas.get("ExplainRequest", {}).get("properties", {})
    for variant in explain.get("text", {}).get("anyOf", []):
        if variant.get("type") == "string":
            variant["maxLength"] = max_text_chars
    for variant in explain.get("texts", {}).get("anyOf", []):
        if variant.get("type") == "array":
            variant["maxItems"] = max_explain_items
            variant.get("items", {})["maxLength"] = max_text_chars
    text = schemas.get("PredictRequest", {}).get("properties", {}).get("text")
    if text is not None:
        text["maxLength"] = max_text_chars
    texts = schemas.get("BatchPredictRequest", {}).get("properties", {}).get("texts")
    if texts is not None:
        texts["maxItems"] = max_batch_items
        texts.get("items", {})["maxLength"] = max_text_chars
    return document


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


_EXPLAIN_EXAMPLE = "I did not like it, but the music was great."


def _explain_schema_extra(schema: dict[str, Any]) -> None:
    """Examples, and the rule in the schema: exactly one of a text or a list of texts."""
    schema["examples"] = [{"text": _EXPLAIN_EXAMPLE}, {"texts": [_EXPLAIN_EXAMPLE]}]
    schema["oneOf"] = [
        {"required": ["text"], "properties": {"text": {"type": "string"}}},
        {"required": ["texts"], "properties": {"texts": {"type": "array"}}},
    ]


class ExplainRequest(BaseModel):
    """One text (``text``) or a small batch (``texts``) to explain: exactly one of them."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_explain_schema_extra)

    text: PredictText | None = Field(default=None, description="One raw English text.")
    texts: list[PredictText] | None = Field(
        default=None,
        min_length=1,
        description="Several raw texts (at most SENTIMENT_MAX_EXPLAIN_ITEMS).",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ExplainRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("send exactly one of 'text' or 'texts'")
        return self

    def all_texts(self) -> list[str]:
        if self.text is not None:
            return [self.text]
        return list(self.texts or ())


class Unit(BaseModel):
    """One unit the model scored and its exact share of the raw logit."""

    unit: str = Field(
        description="A word, or words joined by one space (an n-gram), lower-cased; "
        "'NOT_' marks a word in a negation's scope; '[UNK]' stands for an empty text."
    )
    contribution: float = Field(description="This unit's exact share of raw_logit.")


class InputAccounting(BaseModel):
    """What of the text the model actually scored."""

    token_count: int = Field(
        ge=0,
        description="Real units scored (words and n-grams, at most the sequence length); "
        "the n of the temperature T(n) (taken as 1 for an empty text).",
    )
    truncated: bool = Field(description="The text had more units than the sequence length.")
    oov_count: int = Field(ge=0, description="Scored units the model's vocabulary lacks.")
    oov_share: float = Field(ge=0, le=1, description="oov_count / token_count (0 if empty).")


class Explanation(BaseModel):
    """Everything the model computed for one text; sum(contributions) + bias == raw_logit."""

    label: Label = Field(description="'positive' when probability >= the decision threshold.")
    probability: float = Field(ge=0, le=1, description="P(positive), as /v1/predict answers.")
    logit: float = Field(description="Calibrated logit: raw_logit / temperature.")
    raw_logit: float = Field(description="bias + the sum of the units' contributions.")
    temperature: float = Field(
        description="What raw_logit is divided by: T(n) = a + b/n^p (n = input.token_count), "
        "times |raw_logit/T(n)|^(1-g) for a model whose card's calibration has a power g < 1."
    )
    bias: float = Field(description="The model's bias: the raw logit of a text with no units.")
    input: InputAccounting
    units: list[Unit] = Field(description="Every scored unit in the model's order.")


class ExplainResponse(BaseModel):
    """One explanation per input text, in input order."""

    model_config = ConfigDict(protected_namespaces=())

    explanations: list[Explanation]
    model_version: str = Field(description="Version directory of the model that explained.")
