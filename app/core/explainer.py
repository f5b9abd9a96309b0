"""Explanations: why the model said what it said, exactly.

The model is a sum over units (words and word n-grams): the raw logit is the bias plus each
scored unit's share, and the calibrated logit is the raw logit divided by the temperature
(T(n) = a + b/n^p, n being the text's real unit count, bent by the card's power where it has
one). The ``explain`` signature (exported since version 3) computes every share inside the
graph, so the shares are exact, not an approximation like LIME or SHAP, and cost about one
scoring call.

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

The TensorFlow call runs on the explainer's own worker thread, never on the event loop and not
on the batcher's thread (explanations are larger and rarer than predictions, and must not
delay them). A bounded number of explanations wait for it; more get 429 at once. The app's
lifespan closes the explainer, and its thread with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from app.core.errors import (
    ExplainUnavailableError,
    InferenceError,
    OverloadedError,
    ServiceError,
)
from app.core.predictor import Predictor
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

# Explanations waiting for (or on) the explain thread before new ones get 429.
MAX_WAITING_EXPLANATIONS = 32


def explain_blocking(
    explain: Callable[..., Any], texts: Sequence[str], predictor: Predictor
) -> list[dict[str, Any]]:
    """Call the ``explain`` signature and shape its flat outputs per text (worker thread).

    Everything that touches TensorFlow or loops over units runs here, off the event loop. The
    label is the predictor's rule, as for every prediction.
    """
    outputs = explain(**{INPUT_NAME: predictor.text_input(list(texts))})
    values = {name: np.asarray(tensor) for name, tensor in outputs.items()}
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
    labels = predictor.labels_for(columns[PROBABILITY_OUTPUT])
    explanations = []
    start = 0
    for i, end in enumerate(ends):
        explanations.append(
            {
                "label": labels[i],
                "probability": columns[PROBABILITY_OUTPUT][i],
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
        if self._executor is None:  # created on first use, shut down by ``close``
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explain")
        self._waiting += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor,
                explain_blocking,
                function,
                texts,
                predictor,
            )
        except ServiceError:
            raise
        except Exception as exc:
            # The type only: an exception message may quote the input.
            logger.error("explain failed for %d texts: %s", len(texts), type(exc).__name__)
            raise InferenceError() from exc
        finally:
            self._waiting -= 1

    async def close(self) -> None:
        """Stop the explain thread once the explanation it runs (if any) is done."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
