"""Counterfactual augmentation: clear-cut snippets negated, with their labels flipped.

A review's label says little about "not X" on its own; a snippet whose sentiment is clear
(judged by the training rows' own evidence: the naive-Bayes start) and its negation teach the
model that negating a clause reverses it. Only training snippets are augmented. Both presets
leave it off: on the mix of corpora it cost every domain accuracy and did not help negation on
real texts (docs/model.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
import tensorflow as tf

from training.data import RunRow
from training.model import Hyperparameters, tokenize
from training.start import LinearStart, clear_cut
from training.vectorize import Counts, chunked, counts_matrix

# A snippet is negated only when the naive-Bayes start already gives its label this probability:
# a neutral sentence has no clear opposite.
COUNTERFACTUAL_CONFIDENCE = 0.75
COUNTERFACTUAL = "counterfactual"

# Auxiliaries after which English puts its "not": "was good" → "was not good".
_AUXILIARY = re.compile(
    r"\b(is|was|are|were|am|do|does|did|has|have|had|will|would|can|could|should|must)\b",
    re.IGNORECASE,
)
# Negations that a counterfactual removes: "was not good" → "was good", "isn't" → "is".
_NEGATION = re.compile(r"\b(?:(not|never) |(\w+)n't\b)", re.IGNORECASE)
_CONTRACTED = {"wo": "will", "ca": "can", "sha": "shall"}


def negated_counterfactual(sentence: str) -> str | None:
    """The sentence with its first negation removed, or "not" added after its first auxiliary.

    None when neither applies (no negation, no auxiliary): such a sentence has no simple
    opposite. "The plot was dull" → "The plot was not dull"; "I didn't like it" → "I did like
    it"; "It is not funny" → "It is funny".
    """
    negation = _NEGATION.search(sentence)
    if negation is not None:
        if negation.group(2) is not None:
            stem = negation.group(2)
            restored = _CONTRACTED.get(stem.lower(), stem)
            return sentence[: negation.start()] + restored + sentence[negation.end() :]
        return sentence[: negation.start()] + sentence[negation.end() :]
    auxiliary = _AUXILIARY.search(sentence)
    if auxiliary is None:
        return None
    return sentence[: auxiliary.end()] + " not" + sentence[auxiliary.end() :]


def counterfactual_counts(
    vectorizer: Any,
    params: Hyperparameters,
    start: LinearStart,
    snippets: Counts,
    snippet_rows: Iterable[RunRow],
) -> Counts:
    """The unit counts of every clear-cut snippet's counterfactual, label flipped.

    `snippet_rows` are the snippets' texts in the order of `snippets`' rows.
    """
    clear = clear_cut(start, snippets.matrix, snippets.labels, COUNTERFACTUAL_CONFIDENCE)
    negated: list[tuple[str, RunRow]] = []
    for row, keep in zip(snippet_rows, clear.tolist(), strict=True):
        text = negated_counterfactual(row.text) if keep else None
        if text is not None:
            negated.append((text, row))
    blocks = [
        counts_matrix(
            tokenize(vectorizer, params, tf.constant([text for text, _ in chunk])),
            params.max_tokens,
        )
        for chunk in chunked(negated)
    ]
    rows = [row for _, row in negated]
    matrix = (
        sp.vstack(blocks, format="csr")
        if blocks
        else sp.csr_matrix((0, params.max_tokens), dtype=np.float32)
    )
    matrix.indices = matrix.indices.astype(np.int32)
    return Counts(
        matrix,
        np.asarray([1.0 - row.label for row in rows], np.float32),
        np.asarray([row.corpus for row in rows], dtype=str),
        np.asarray([row.domain for row in rows], dtype=str),
        np.asarray([COUNTERFACTUAL] * len(rows), dtype=str),
    )
