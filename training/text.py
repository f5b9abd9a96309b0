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

import tensorflow as tf

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
_NEGATED_CONTRACTION = ".+n't"

_CLAUSE_PUNCTUATION = '.,;:!?()[]{}"'
# One pass for everything that ends a clause; runs of them become a single boundary.
_CLAUSE_END = "(?:<br */?>|[" + re.escape(_CLAUSE_PUNCTUATION) + "])+"
# The rest of ASCII punctuation (apostrophe aside) separates words.
_WORD_SEPARATORS = (
    "["
    + re.escape("".join(c for c in string.punctuation if c not in _CLAUSE_PUNCTUATION + "'"))
    + "]"
)
# An apostrophe not between two letters is a quote mark, not part of a word.
_QUOTE_MARK = "(^|[^a-z])'+|'+([^a-z]|$)"

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
    bounded = tf.strings.regex_replace(straight, _CLAUSE_END, f" {CLAUSE_BOUNDARY} ")
    spaced = tf.strings.regex_replace(bounded, _WORD_SEPARATORS, " ")
    unquoted: tf.Tensor = tf.strings.regex_replace(spaced, _QUOTE_MARK, "\\1 \\2")
    return unquoted


def _is_one_of(tokens: tf.Tensor, words: tuple[str, ...]) -> tf.Tensor:
    return tf.reduce_any(tf.equal(tokens[:, tf.newaxis], tf.constant(words)[tf.newaxis, :]), axis=1)


def split_marking_negation(standardized: tf.Tensor) -> tf.RaggedTensor:
    """Words of each standardized text, ``NOT_``-marked inside negation scopes: [N] → [N, None].

    Works on the flat list of every text's tokens at once: a clause starts at each text's first
    token and after each boundary or contrast word; a token is negated when an odd number of
    negators precede it in its clause.
    """
    tokens = tf.strings.split(standardized)
    flat = tokens.flat_values
    positions = tf.range(tf.size(flat, out_type=tf.int64))
    row_ids = tokens.value_rowids()
    is_boundary = tf.equal(flat, CLAUSE_BOUNDARY)
    resets = is_boundary | _is_one_of(flat, CONTRAST_WORDS)
    is_negator = _is_one_of(flat, NEGATORS) | tf.strings.regex_full_match(
        flat, _NEGATED_CONTRACTION
    )
    starts_text = tf.equal(positions, tf.gather(tokens.row_starts(), row_ids))
    clause = tf.cumsum(tf.cast(resets | starts_text, tf.int64)) - 1
    # One past the last clause id (at least 1, so a batch with no tokens still works).
    clauses = tf.maximum(tf.reduce_max(tf.concat([clause, [0]], axis=0)) + 1, 1)
    clause_start = tf.math.unsorted_segment_min(positions, clause, clauses)
    negators_before = tf.cumsum(tf.cast(is_negator, tf.int64), exclusive=True)
    in_clause = negators_before - tf.gather(negators_before, tf.gather(clause_start, clause))
    negated = tf.equal(in_clause % 2, 1) & ~is_negator & ~resets
    marked = tf.where(negated, tf.strings.join([NEGATION_PREFIX, flat]), flat)
    keep = ~is_boundary
    return tf.RaggedTensor.from_value_rowids(
        tf.boolean_mask(marked, keep), tf.boolean_mask(row_ids, keep), nrows=tokens.nrows()
    )


def negated_base(unit: str) -> str | None:
    """For a unit whose every word is negated ("NOT_bad NOT_at"), the unit without the marks.

    Units that mix negated and plain words ("not NOT_bad") or have no marks have no base.
    """
    words = unit.split(" ")
    if not all(word.startswith(NEGATION_PREFIX) for word in words):
        return None
    return " ".join(word[len(NEGATION_PREFIX) :] for word in words)
