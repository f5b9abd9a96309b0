"""Request and response bodies; their examples make up the OpenAPI documentation.

The schema says exactly what the service accepts, so a client generated from it (or a
schema-driven fuzzer) never sends a body it believes valid and gets 422: a text must contain a
non-whitespace character and no NUL (``TEXT_PATTERN``: the characters ``str.strip`` removes,
spelled out so every regex engine agrees; ``unscorable_reason`` says why NUL is refused).
Limits that depend on settings (characters per text, texts per batch) are checked in the
routes, because a schema class is shared by every app instance in the process;
``reflect_setting_limits`` writes an app's values into its OpenAPI document.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def is_blank(text: str) -> bool:
    """Empty or whitespace only, by ``str.strip``: the one rule every route applies."""
    return not text.strip()


# JSON may spell a lone UTF-16 surrogate ("\ud800"); Python decodes it into a str that has no
# UTF-8 form, so TensorFlow cannot take it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def unscorable_reason(text: str) -> str | None:
    """Why the model cannot score ``text`` faithfully, or None (blank texts aside).

    A lone surrogate used to reach TensorFlow, which refused it, and the whole model call
    failed with it (503 for every request that shared the batch). A NUL: the graphs of versions
    3 on lowercase with ``tf.strings.lower(encoding="utf-8")``, which ends the text there, so
    "good\\0 awful" scored as "good". ``TEXT_PATTERN`` excludes NUL too.
    """
    if "\x00" in text:
        return "A text contains a NUL character (U+0000); the model would not read past it."
    if not text.isascii() and _LONE_SURROGATE.search(text):
        return (
            "A text contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not a "
            "character; send UTF-8 text."
        )
    return None


def _reject_blank(text: str) -> str:
    if is_blank(text):
        raise ValueError("text must not be empty or whitespace only")
    return text


def _text_pattern() -> str:
    """A regex for an acceptable text: no NUL, and a character ``str.strip`` keeps somewhere.

    Code points are explicit \\u escapes and the pattern is anchored, so Python's ``re`` and
    JSON Schema's ECMA dialect accept exactly the same strings.
    """
    blank = [code for code in range(sys.maxunicode + 1) if chr(code).isspace()]
    kept = "[^\\u0000" + "".join(f"\\u{code:04x}" for code in blank) + "]"
    return f"^[^\\u0000]*{kept}[^\\u0000]*$"


TEXT_PATTERN = _text_pattern()
ReviewText = Annotated[str, AfterValidator(_reject_blank)]
# A text as every route's schema describes it: the validation above, stated as a pattern that
# means the same in any regex dialect (a bare \S does not: Python counts U+001C-U+001F as
# whitespace, JSON Schema's ECMA dialect does not, so schema-driven clients sent "\x1e").
NonBlankText = Annotated[
    ReviewText, Field(min_length=1, json_schema_extra={"pattern": TEXT_PATTERN})
]
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
Label = Literal["positive", "negative"]

_EXAMPLE_TEXT = "This movie was wonderful, I loved every minute of it."


class PredictRequest(BaseModel):
    """One text to score."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": _EXAMPLE_TEXT}]}
    )

    text: PredictText


class BatchPredictRequest(BaseModel):
    """Several texts to score in one request."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"texts": [_EXAMPLE_TEXT, "Terrible acting, a waste of time."]}]
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
