"""POST /v1/explain: why the model said what it said, exactly.

The model is a sum over units (words and word n-grams): the raw logit is the bias plus each
scored unit's share, and the calibrated logit is the raw logit divided by the temperature
(T(n) = a + b/n^p, n being the text's real unit count, bent by the card's power where it has
one). The ``explain`` signature (exported
since version 3) computes every share inside the graph, so the shares are exact, not an
approximation like LIME or SHAP, and cost about one scoring call.

Units are the model's, as it scored them: the service never re-tokenizes text (that would
be a second copy of the model's text processing, free to drift from it). So no character
spans are given. How units map to words, documented in the README and relied on by the
playground page:

* a text's units come in the model's order: its words (unigrams) in text order, then its
  word bigrams in text order ("a b" is words i and i+1), then its trigrams (if the model has
  them); a unit with k spaces joins k+1 words;
* words are lower-cased; punctuation other than apostrophes separates words and is dropped;
  a word inside a negation's scope carries a ``NOT_`` prefix ("not like it" gives ``not``,
  ``NOT_like``, ``NOT_it``);
* a text longer than the model's sequence length keeps its first units only (``truncated``);
* an empty text is scored as one ``[UNK]`` unit; a word the model never saw shows its own text
  and counts in ``oov_count``.

The playground highlights a word of the original text by matching it, case-insensitively and
in order, to the next unigram unit (``NOT_`` stripped).

The TensorFlow call runs on this module's own worker thread, never on the event loop and not
on the batcher's thread (explanations are larger and rarer than predictions, and must not
delay them). A bounded number of explanations wait for it; more get 429 at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response

from app.core.errors import (
    ExplainUnavailableError,
    InferenceError,
    OverloadedError,
    PayloadTooLargeError,
    ServiceError,
)
from app.core.predictor import Predictor
from app.core.scoring import check_texts
from app.protocols.native_schemas import ErrorResponse, Label, PredictText
from app.service import Service
from contract import (
    BIAS_OUTPUT,
    CONTRIBUTIONS_OUTPUT,
    EXPLAIN_SIGNATURE_NAME,
    INPUT_NAME,
    LOGIT_OUTPUT,
    OOV_COUNT_OUTPUT,
    OOV_SHARE_OUTPUT,
    PROBABILITY_OUTPUT,
    RAW_LOGIT_OUTPUT,
    TEMPERATURE_OUTPUT,
    TOKEN_COUNT_OUTPUT,
    TRUNCATED_OUTPUT,
    UNITS_OUTPUT,
    UNITS_PER_TEXT_OUTPUT,
)

logger = logging.getLogger(__name__)

EXPLAIN_PATH = "/v1/explain"
# Explanations waiting for (or on) the explain thread before new ones get 429.
MAX_WAITING_EXPLANATIONS = 32

_EXAMPLE_TEXT = "I did not like it, but the music was great."


def _explain_schema_extra(schema: dict[str, Any]) -> None:
    """Examples, and the rule in the schema: exactly one of a text or a list of texts."""
    schema["examples"] = [{"text": _EXAMPLE_TEXT}, {"texts": [_EXAMPLE_TEXT]}]
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


def explain_blocking(
    explain: Callable[..., Any], texts: Sequence[str], threshold: float
) -> list[dict[str, Any]]:
    """Call the ``explain`` signature and shape its flat outputs per text (worker thread).

    Everything that touches TensorFlow or loops over units runs here, off the event loop.
    """
    import tensorflow as tf  # already imported by the predictor; deferred like there

    outputs = explain(**{INPUT_NAME: tf.constant(list(texts), dtype=tf.string)})
    values = {name: tensor.numpy() for name, tensor in outputs.items()}
    count = len(texts)
    for name in (UNITS_PER_TEXT_OUTPUT, PROBABILITY_OUTPUT, RAW_LOGIT_OUTPUT):
        if values[name].reshape(-1).shape[0] != count:
            raise InferenceError()
    ends = np.cumsum(values[UNITS_PER_TEXT_OUTPUT]).tolist()
    units = [unit.decode("utf-8", "replace") for unit in values[UNITS_OUTPUT].tolist()]
    contributions = values[CONTRIBUTIONS_OUTPUT].astype(np.float64).tolist()
    columns = {
        name: values[name].reshape(-1).tolist()
        for name in (
            PROBABILITY_OUTPUT,
            LOGIT_OUTPUT,
            RAW_LOGIT_OUTPUT,
            TEMPERATURE_OUTPUT,
            BIAS_OUTPUT,
            TOKEN_COUNT_OUTPUT,
            TRUNCATED_OUTPUT,
            OOV_COUNT_OUTPUT,
            OOV_SHARE_OUTPUT,
        )
    }
    explanations = []
    start = 0
    for i, end in enumerate(ends):
        probability = columns[PROBABILITY_OUTPUT][i]
        explanations.append(
            {
                "label": "positive" if probability >= threshold else "negative",
                "probability": probability,
                "logit": columns[LOGIT_OUTPUT][i],
                "raw_logit": columns[RAW_LOGIT_OUTPUT][i],
                "temperature": columns[TEMPERATURE_OUTPUT][i],
                "bias": columns[BIAS_OUTPUT][i],
                "input": {
                    "token_count": columns[TOKEN_COUNT_OUTPUT][i],
                    "truncated": columns[TRUNCATED_OUTPUT][i],
                    "oov_count": columns[OOV_COUNT_OUTPUT][i],
                    "oov_share": columns[OOV_SHARE_OUTPUT][i],
                },
                "units": [
                    {"unit": unit, "contribution": contribution}
                    for unit, contribution in zip(
                        units[start:end], contributions[start:end], strict=True
                    )
                ],
            }
        )
        start = end
    return explanations


class Explainer:
    """Runs explanations on one dedicated thread, with a bounded number waiting."""

    def __init__(self, max_waiting: int = MAX_WAITING_EXPLANATIONS) -> None:
        self._max_waiting = max_waiting
        self._waiting = 0  # event loop thread only
        self._executor: ThreadPoolExecutor | None = None

    async def explain(self, predictor: Predictor, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Explanations of ``texts`` by ``predictor``; 501 if it has no explain signature."""
        function = predictor.signature(EXPLAIN_SIGNATURE_NAME)
        if function is None:
            raise ExplainUnavailableError(
                f"Model version {predictor.version_label} was exported without the "
                f"'{EXPLAIN_SIGNATURE_NAME}' signature; versions exported since 3 have it."
            )
        if self._waiting >= self._max_waiting:
            raise OverloadedError()
        if self._executor is None:  # created on first use; its idle thread ends with the process
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explain")
        self._waiting += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor,
                explain_blocking,
                function,
                texts,
                predictor.decision_threshold,
            )
        except ServiceError:
            raise
        except Exception as exc:
            # The type only: an exception message may quote the input.
            logger.error("explain failed for %d texts: %s", len(texts), type(exc).__name__)
            raise InferenceError() from exc
        finally:
            self._waiting -= 1


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def explain(body: ExplainRequest, request: Request) -> Response:
    """Each unit's exact share of the logit, the calibration and the input accounting."""
    service = _service(request)
    texts = body.all_texts()
    limit = service.settings.max_explain_items
    if len(texts) > limit:
        raise PayloadTooLargeError(f"At most {limit} texts per explain request.")
    check_texts(service, texts)
    predictor = service.registry.require_live()
    explainer: Explainer = request.app.state.explainer
    explanations = await explainer.explain(predictor, texts)
    body_bytes = orjson.dumps(
        {"explanations": explanations, "model_version": predictor.version_label}
    )
    return Response(body_bytes, media_type="application/json")


def install_explain_route(app: FastAPI, dependencies: list[Any] | None) -> None:
    """Register POST /v1/explain (behind the API key when ``dependencies`` holds it)."""
    app.state.explainer = Explainer()
    app.add_api_route(
        EXPLAIN_PATH,
        explain,
        methods=["POST"],
        response_model=ExplainResponse,
        responses={
            status: {"model": ErrorResponse} for status in (400, 401, 413, 422, 429, 501, 503)
        },
        summary="Explain scores: each unit's exact share of the logit",
        tags=["predictions"],
        dependencies=dependencies,
    )
