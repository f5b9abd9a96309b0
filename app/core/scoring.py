"""The steps every prediction route shares, whatever protocol it speaks.

Our own routes, TF Serving's and the Open Inference Protocol's all go through these, so they
share the limits (texts per request, characters per text), the micro-batcher (and so its
429 on a full queue and 503 when no model is live) and the prediction metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request

from app.core.batcher import ScoredTexts
from app.core.errors import InferenceError, InvalidInputError, PayloadTooLargeError
from app.core.predictor import Predictor
from app.protocols.native_schemas import unscorable_reason
from app.service import Service


def service_of(request: Request) -> Service:
    """The app's one Service (``create_app`` puts it on ``app.state``)."""
    service: Service = request.app.state.service
    return service


def check_batch_size(service: Service, count: int) -> None:
    """413 when one request carries more texts than ``max_batch_items``."""
    limit = service.settings.max_batch_items
    if count > limit:
        raise PayloadTooLargeError(f"At most {limit} texts per request.")


def check_texts(service: Service, texts: Sequence[str]) -> None:
    """422 for a text over ``max_text_chars`` or unscorable (``unscorable_reason``), checked
    before it joins a micro-batch."""
    max_chars = service.settings.max_text_chars
    for text in texts:
        if len(text) > max_chars:
            raise InvalidInputError(f"A text is longer than {max_chars} characters.")
        reason = unscorable_reason(text)
        if reason is not None:
            raise InvalidInputError(reason)


async def score_texts(service: Service, texts: Sequence[str]) -> ScoredTexts[Predictor]:
    """Check the limits that depend on settings, then score via the micro-batcher."""
    service.registry.require_live()
    check_texts(service, texts)
    return await service.batcher.submit(texts)


async def score_with_logits(
    service: Service, texts: Sequence[str]
) -> tuple[list[float], list[float], Predictor]:
    """Probabilities and logits (the protocol routes answer both), counted by label."""
    scored = await score_texts(service, texts)
    if scored.logits is None:  # a score function without logits: never the app's
        raise InferenceError()
    count_labels(service, labels_for(scored.probabilities, scored.model))
    return scored.probabilities, scored.logits, scored.model


def labels_for(probabilities: list[float], predictor: Predictor) -> list[str]:
    """Apply the model card's decision threshold."""
    threshold = predictor.decision_threshold
    return ["positive" if p >= threshold else "negative" for p in probabilities]


def count_labels(service: Service, labels: list[str]) -> None:
    """Count the predicted labels in the metrics."""
    positives = labels.count("positive")
    service.metrics.count_predictions(positives, len(labels) - positives)
