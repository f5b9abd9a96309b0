"""Text to tokens, in TensorFlow ops only, so the same code runs in training and in the export.

Two pipelines share this module:

* the tutorial's (``standardize_tutorial`` + whitespace split), kept for the ``tutorial`` preset
  and the published versions 1 and 2 (whose graphs carry their own copy);
* the default's: ``standardize`` keeps clause punctuation as a boundary token, and
  ``split_marking_negation`` splits into words, marks every word in a negation's scope with
  ``NOT_`` and drops the boundaries.

Negation scope (Das & Chen 2001; Pang, Lee & Vaithyanathan 2002): a negator ("not", "no",
"never", "nothing", "hardly", "without", any "...n't" and its apostrophe-less spelling "didnt")
opens a scope that runs to the end of its clause: clause punctuation (``. , ; : ! ? ( ) "``
and IMDB's ``<br />``) or a contrast word ("but", "although", "however", ...) ends it. Two
negators in one clause cancel: each negator toggles the scope, so "never not funny" leaves
"funny" unmarked. The negators themselves are never marked, so "not" stays one shared word.

"I did not like it, but the music was great" becomes
``i did not NOT_like NOT_it but the music was great``: "NOT_like" is a unit of its own, with
its own weight (see ``training.model.NegationTiedEmbedding`` for how it starts from "like").
"""

from __future__ import annotations

import re
import string
from typing import NamedTuple

import tensorflow as tf

# The vocabulary's reserved ids (TextVectorization's): padding, and every unit not in it.
PADDING_ID = 0
UNKNOWN_ID = 1
NEGATION_PREFIX = "NOT_"  # upper case: standardized text is lower case, so it never collides
CLAUSE_BOUNDARY = "."
NEGATORS = (
    "not", "no", "never", "nothing", "nobody", "none", "nowhere", "neither", "nor",
    "hardly", "barely", "scarcely", "without", "cannot",
    # "...n't" is matched by pattern; these are the same words typed without the apostrophe.
    "dont", "didnt", "doesnt", "isnt", "wasnt", "arent", "werent", "cant", "couldnt", "wont",
    "wouldnt", "shouldnt", "havent", "hasnt", "hadnt", "aint", "mustnt", "neednt",
)  # fmt: skip
CONTRAST_WORDS = ("but", "although", "though", "however", "yet", "whereas", "except")
# The standardized text carries the clause structure as tokens, so splitting needs no word
# lists: a "." boundary ends a clause (and stands before every contrast word), and a "~" marker
# follows every negator. Punctuation is gone by then, so neither can be a real word. Both are
# dropped after marking; they only steer it.
NEGATOR_MARK = "~"
_CLAUSE_PUNCTUATION = '.,;:!?()[]{}"'
# Runs of clause punctuation (or IMDB's <br />) become one boundary; a contrast word gets one.
_CLAUSE_END = (
    "(?:<br */?>|["
    + re.escape(_CLAUSE_PUNCTUATION)
    + "])+|\\b("
    + "|".join(CONTRAST_WORDS)
    + ")\\b"
)
# The rest of ASCII punctuation (apostrophe aside) separates words, and an apostrophe not
# between two letters is a quote mark, not part of a word.
_WORD_SEPARATOR_OR_QUOTE = (
    "["
    + re.escape("".join(c for c in string.punctuation if c not in _CLAUSE_PUNCTUATION + "'"))
    + "]|(^|[^a-z])'+|'+([^a-z]|$)"
)
_NEGATOR = r"\b(" + "|".join(NEGATORS) + r"|\w+n't)\b"

_TUTORIAL_PUNCTUATION = f"[{re.escape(string.punctuation)}]"


def standardize_tutorial(text: tf.Tensor) -> tf.Tensor:
    """The tutorial's cleanup: lowercase, drop IMDB's `<br />` line breaks, strip punctuation."""
    lowercase = tf.strings.lower(text)
    without_html = tf.strings.regex_replace(lowercase, "<br />", " ")
    stripped: tf.Tensor = tf.strings.regex_replace(without_html, _TUTORIAL_PUNCTUATION, "")
    return stripped


def standardize(text: tf.Tensor) -> tf.Tensor:
    """Lowercase; clause punctuation becomes a " . " boundary token, other punctuation a space.

    Apostrophes survive inside words ("don't", curly ones made straight); quote marks around
    words are dropped, so "'great'" and "great" are the same token.
    """
    lowercase = tf.strings.lower(text, encoding="utf-8")
    straight = tf.strings.regex_replace(lowercase, "[\u2018\u2019]", "'")
    bounded = tf.strings.regex_replace(straight, _CLAUSE_END, f" {CLAUSE_BOUNDARY} \\1")
    spaced = tf.strings.regex_replace(bounded, _WORD_SEPARATOR_OR_QUOTE, "\\1 \\2")
    marked: tf.Tensor = tf.strings.regex_replace(spaced, _NEGATOR, f"\\1 {NEGATOR_MARK}")
    return marked


class NegationScopes(NamedTuple):
    """What `split_marking_negation` does with each token of a batch of standardized texts:
    `negated` ones get the mark, `steering` ones (boundaries, negator marks) go."""

    negated: tf.Tensor  # [tokens] bool
    steering: tf.Tensor  # [tokens] bool


def negation_scopes(
    tokens: tf.RaggedTensor, is_boundary: tf.Tensor, is_mark: tf.Tensor
) -> NegationScopes:
    """Which of the split tokens of standardized texts lie in a negation scope.

    The caller says which tokens are boundaries and negator marks, so that a caller which maps
    tokens to numbers anyway (the export's n-gram path) compares numbers instead of strings:
    comparing every token with two strings costs more than the lookup it already does.

    Works on the flat list of every text's tokens at once: a clause starts at each text's first
    token and at each boundary (`standardize` puts one before each contrast word); a token is
    negated when an odd number of negator marks (`standardize` puts one after each negator)
    precede it in its clause.
    """
    positions = tf.range(tf.size(is_boundary, out_type=tf.int64))
    row_ids = tokens.value_rowids()
    starts_text = tf.equal(positions, tf.gather(tokens.row_starts(), row_ids))
    clause = tf.cumsum(tf.cast(is_boundary | starts_text, tf.int64)) - 1
    # One past the last clause id (at least 1, so a batch with no tokens still works).
    clauses = tf.maximum(tf.reduce_max(tf.concat([clause, [0]], axis=0)) + 1, 1)
    clause_start = tf.math.unsorted_segment_min(positions, clause, clauses)
    marks_before = tf.cumsum(tf.cast(is_mark, tf.int64), exclusive=True)
    in_clause = marks_before - tf.gather(marks_before, tf.gather(clause_start, clause))
    steering = is_boundary | is_mark
    # A negator is the token just before a mark; negators are never marked themselves.
    is_negator = tf.concat([is_mark[1:], [False]], axis=0)
    negated = tf.equal(in_clause % 2, 1) & ~steering & ~is_negator
    return NegationScopes(negated, steering)


def split_marking_negation(standardized: tf.Tensor) -> tf.RaggedTensor:
    """Words of each standardized text, ``NOT_``-marked inside negation scopes: [N] → [N, None]."""
    tokens = tf.strings.split(standardized)
    flat = tokens.flat_values
    negated, steering = negation_scopes(
        tokens, tf.equal(flat, CLAUSE_BOUNDARY), tf.equal(flat, NEGATOR_MARK)
    )
    # Rewrite only the tokens that change: most are not negated.
    scoped = tf.where(negated)
    flat = tf.tensor_scatter_nd_update(
        flat, scoped, tf.strings.join([NEGATION_PREFIX, tf.gather_nd(flat, scoped)])
    )
    keep = ~steering
    return tf.RaggedTensor.from_value_rowids(
        tf.boolean_mask(flat, keep),
        tf.boolean_mask(tokens.value_rowids(), keep),
        nrows=tokens.nrows(),
    )


def negated_base(unit: str) -> str | None:
    """For a unit whose every word is negated ("NOT_bad NOT_at"), the unit without the marks.

    Units that mix negated and plain words ("not NOT_bad") or have no marks have no base.
    """
    words = unit.split(" ")
    if not all(word.startswith(NEGATION_PREFIX) for word in words):
        return None
    return " ".join(word[len(NEGATION_PREFIX) :] for word in words)


def negation_base_ids(vocabulary: list[str]) -> list[int]:
    """For each vocabulary entry, the id of its un-negated form or -1 (NegationTiedEmbedding)."""
    index = {unit: i for i, unit in enumerate(vocabulary)}
    bases = []
    for unit in vocabulary:
        base = negated_base(unit)
        bases.append(index.get(base, -1) if base is not None else -1)
    return bases
