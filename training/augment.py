"""Counterfactual augmentation: clear-cut snippets negated, with their labels flipped.

IMDB's review labels say little about "not X" on its own; a snippet whose sentiment is clear
(judged by the training split's own evidence: the naive-Bayes start) and its negation teach the
model that negating a clause reverses it. Only training snippets are augmented; the validation
snippets are negated the same way only to check what the short texts' weight costs negation.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from training.data import Split
from training.start import LinearStart, clear_cut

# A snippet is negated only when the naive-Bayes start already gives its label this probability:
# a neutral sentence has no clear opposite.
COUNTERFACTUAL_CONFIDENCE = 0.75

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


def counterfactual_snippets(snippets: Split, clear: np.ndarray) -> Split:
    """Counterfactual augmentation: each clear-cut snippet negated, with its label flipped.

    IMDB's review labels say little about "not X" on its own; a snippet whose sentiment is
    clear (`clear`: judged by the training split's own evidence) and its negation teach the
    model that negating a clause reverses it. Only the training split is used.
    """
    texts: list[str] = []
    labels: list[float] = []
    for text, label, keep in zip(snippets.texts, snippets.labels.tolist(), clear, strict=True):
        negated = negated_counterfactual(text) if keep else None
        if negated is not None:
            texts.append(negated)
            labels.append(1.0 - label)
    return Split(texts, np.array(labels, dtype=np.float32))


def negated_snippets(naive_bayes: LinearStart, snippets: Split, snippet_ids: Any) -> Split:
    """The counterfactuals of the snippets the naive-Bayes start finds clear-cut."""
    clear = clear_cut(naive_bayes, snippet_ids, snippets.labels, COUNTERFACTUAL_CONFIDENCE)
    return counterfactual_snippets(snippets, clear)
