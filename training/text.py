"""Text units: how a text becomes the tokens and units the model scores, in TensorFlow ops only, so
the same code runs in training (Keras' TextVectorization) and in the export (`training.units`).

Two pipelines share this module:

* the tutorial's (``standardize_tutorial`` + whitespace split), kept for the ``tutorial`` preset
  and the published versions 1 and 2 (whose graphs carry their own copy);
* the default's: ``standardize`` lower-cases (ASCII) and spaces out punctuation in one regex
  pass, and ``split_marking_negation`` splits into tokens, normalizes them (Unicode lower case,
  apostrophes), marks every word in a negation's scope with ``NOT_`` and drops the clause
  boundaries and other punctuation.

Tokens. Every punctuation character is a token of its own: clause punctuation (``. , ; : ! ? ( )
[ ] { } "``, curly double quotes, the ellipsis, and IMDB's ``<br />``) is a clause boundary;
other punctuation (dashes included) only separates words. Inside a token an apostrophe survives
only between two letters ("don't", curly ones made straight): quote marks are dropped, so
"'great'" is "great" (`normalize_tokens`). Marks that carry sentiment outside prose are tokens
of their own that end a clause and are kept (`SENTIMENT_MARKS`): emoticons (":)", ":-(" is
":("), emoji ("👍", skin tones dropped) and runs of two or more "!" ("!!!"). Elongated words
("soooo") need no rule: they are words, and the vocabulary keeps the frequent ones.

What a token *does* is a property of the token itself (`token_roles`): a boundary ends a clause
and is dropped, a mark ends one and is kept, a contrast word ("but", "although", "however", ...)
starts a clause and is kept, a negator ("not", "never", "hardly", "without", "zero", "lacks",
any "...n't" and its apostrophe-less spellings "didnt", "dnt") toggles negation. Because roles
belong to tokens, the export reads them from the same lookup that gives a token its number, and
a new rule costs no new pass over the text.

Negation scope (Das & Chen 2001; Pang, Lee & Vaithyanathan 2002): a negator opens a scope that
runs to the end of its clause. Two negators in one clause cancel: each negator toggles the scope,
so "never not funny" leaves "funny" unmarked. Negators are never marked themselves, so "not"
stays one shared word.

"I did not like it, but the music was great" becomes
``i did not NOT_like NOT_it but the music was great``: "NOT_like" is a unit of its own, with
its own weight (see ``training.model.NegationTiedEmbedding`` for how it starts from "like").
Units are then words, pairs and triples of neighbouring words (``Hyperparameters.ngrams``).
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
NEGATORS = (
    "not", "no", "never", "nothing", "nobody", "none", "nowhere", "neither", "nor",
    "hardly", "barely", "scarcely", "without", "cannot",
    # Determiner and verb negation ("zero issues" is "no issues", "lacks depth" "has no depth"):
    # chosen on validation (docs/model.md).
    "zero", "lack", "lacks", "lacked", "lacking",
    # "...n't" (and a split-off "n't") is matched by pattern; these are the same words typed
    # without the apostrophe, misspelt, or cut before an unusual apostrophe ("didn t").
    "dont", "didnt", "doesnt", "isnt", "wasnt", "arent", "werent", "cant", "couldnt", "wont",
    "wouldnt", "shouldnt", "havent", "hasnt", "hadnt", "aint", "mustnt", "neednt",
    "dnt", "dosent", "dosnt", "havnt", "doesn", "didn", "isn", "wasn", "aren", "weren", "couldn",
    "wouldn", "shouldn",
)  # fmt: skip
CONTRAST_WORDS = ("but", "although", "though", "however", "yet", "whereas", "except")
# U+0085 and U+0096/U+0097 are the ellipsis and dashes of Windows-1252 text read as Latin-1, as
# in many IMDB reviews.
CLAUSE_PUNCTUATION = '.,;:!?()[]{}"\u201c\u201d\u2026\x85'
# Straight, curly, acute accent and backtick: all typed as apostrophes ("don\u00b4t", "don`t").
APOSTROPHES = "'\u2018\u2019\u00b4`"
WORD_SEPARATORS = (
    "".join(c for c in string.punctuation if c not in CLAUSE_PUNCTUATION + APOSTROPHES)
    + "\u2013\u2014\x96\x97"
    # What shapes an emoji without being one (skin tones, variation selector, joiner): dropped,
    # so "\U0001f44d\U0001f3fd" is "\U0001f44d".
    + "\ufe0f\u200d"
    + "".join(map(chr, range(0x1F3FB, 0x1F400)))
)
LINE_BREAK = "<br */?>"  # after lower-casing


def _chars(chars: str) -> str:
    return "[" + re.escape(chars) + "]"


# Marks that carry sentiment outside prose. Each is a token of its own that ends a clause (so
# "not happy :(" never makes "NOT_:(") and is kept as a unit (`token_roles`).
# An emoticon (after lower-casing; a nose is dropped by `normalize_tokens`) followed by a space
# or the end, so "re:do" stays a word.
EMOTICON = r"[:;]['^o-]?[)(\]\[dp/|](?:\s|$)"
EMOJI = (
    "[\\x{1F300}-\\x{1F3FA}\\x{1F400}-\\x{1F64F}\\x{1F680}-\\x{1F6FF}\\x{1F900}-\\x{1FAFF}"
    "\\x{2600}-\\x{27BF}\\x{2B50}\\x{2B55}]"
)
EXCLAMATIONS = "[!?]*![!?]*!"  # two or more "!" in a run ("!!!", "?!!"); one "!" is a boundary
SENTIMENT_MARKS = (EMOTICON, EMOJI, EXCLAMATIONS)
# The single standardization pass puts spaces around every match of these patterns, so that
# each becomes a token of its own (a line break "<br />" two: "<br", "/>"). RE2 tries them in
# order at each position (leftmost-first). A new kind of token is one more pattern before the
# punctuation: it costs no pass of its own, and what the token does is `token_roles`'s.
ISOLATED = (
    LINE_BREAK,
    *SENTIMENT_MARKS,
    # Every punctuation character on its own ("!!!" is three boundaries, as good as one): the
    # export's word table then knows every punctuation token.
    _chars(CLAUSE_PUNCTUATION + WORD_SEPARATORS),
)
# The whole match (\0): a rewrite that names no group needs no submatch search per match.
STANDARDIZE_PATTERN, STANDARDIZE_REWRITE = "|".join(ISOLATED), " \\0 "
# The tokens with a role (`token_roles`) that text is made of most: the export's word table
# holds them, so only rarer ones ("!!!", "--") take its slower path.
ROLE_TOKENS = (
    *CLAUSE_PUNCTUATION, "<br", "/>", "<br>", "<br/>", *WORD_SEPARATORS, *CONTRAST_WORDS, *NEGATORS,
)  # fmt: skip
# Tokens that `normalize_tokens` leaves as they are and that have no role unless they are one
# of the ROLE_TOKENS: the export skips both for these when its lookup misses them. A new
# normalization (elongated "soooo") or role must keep this true, or narrow the pattern.
PLAIN_TOKEN = "[a-z0-9]+"
# Inside a token, an apostrophe run not between two (ASCII) letters is a quote mark.
_QUOTE = "(^|[^a-z])'+|'+([^a-z]|$)"
# An emoticon's nose (":-)" is ":)"), once quote marks are gone (":')" is ":)" already).
_NOSE, _NO_NOSE = r"^([:;])[\^o-]([)(\]\[dp/|])$", "\\1\\2"
# The tokens the pass makes of clause punctuation and line breaks; tokens of other punctuation.
_BOUNDARY = f"{_chars(CLAUSE_PUNCTUATION)}|<br/?>|<br|/>"
_SEPARATOR = f"{_chars(WORD_SEPARATORS)}+"
# A normalized sentiment mark (`SENTIMENT_MARKS`): a kept token that starts a clause.
_MARK = r"[:;][)(\]\[dp/|]|" + EMOJI + "|[!?]*![!?]*![!?]*"
_STARTS_CLAUSE = f"{_BOUNDARY}|{_MARK}|" + "|".join(CONTRAST_WORDS)
_NEGATOR = "|".join(NEGATORS) + r"|\w*n't"
# The empty alternative: a token that was only quote marks.
_DROPPED = f"{_BOUNDARY}|{_SEPARATOR}|"
_TUTORIAL_PUNCTUATION = _chars(string.punctuation)


def standardize_tutorial(text: tf.Tensor) -> tf.Tensor:
    """The tutorial's cleanup: lowercase, drop IMDB's `<br />` line breaks, strip punctuation."""
    lowercase = tf.strings.lower(text)
    without_html = tf.strings.regex_replace(lowercase, "<br />", " ")
    stripped: tf.Tensor = tf.strings.regex_replace(without_html, _TUTORIAL_PUNCTUATION, "")
    return stripped


def standardize(text: tf.Tensor) -> tf.Tensor:
    """ASCII lowercase, and space out punctuation in one pass (the module's "Tokens").

    The rest of lower-casing is `normalize_tokens`'s: Unicode lower case costs several times
    the ASCII one, and only the few tokens with a non-ASCII capital need it.
    """
    spaced: tf.Tensor = tf.strings.regex_replace(
        tf.strings.lower(text), STANDARDIZE_PATTERN, STANDARDIZE_REWRITE
    )
    return spaced


def normalize_tokens(tokens: tf.Tensor) -> tf.Tensor:
    """Token spellings that mean the same token: Unicode lower case, curly apostrophes made
    straight, and quote marks ("'great'", "80's") dropped, so an apostrophe is left only
    between two letters.

    Idempotent, and the vocabulary holds only normalized tokens, so the export may normalize
    only the tokens its lookup misses and get what normalizing every token gives.
    """
    lowered = tf.strings.lower(tokens, encoding="utf-8")
    straight = tf.strings.regex_replace(lowered, _chars(APOSTROPHES[1:]), "'")
    unquoted = tf.strings.regex_replace(straight, _QUOTE, "\\1\\2")
    without_nose: tf.Tensor = tf.strings.regex_replace(unquoted, _NOSE, _NO_NOSE)
    return without_nose


class TokenRoles(NamedTuple):
    """What each (normalized) token does to negation scopes, as [tokens] bool tensors."""

    starts_clause: tf.Tensor  # clause boundaries and contrast words
    negator: tf.Tensor
    # Clause boundaries (they only steer), other punctuation, and tokens that were only quotes.
    dropped: tf.Tensor


def token_roles(tokens: tf.Tensor) -> TokenRoles:
    return TokenRoles(
        tf.strings.regex_full_match(tokens, _STARTS_CLAUSE),
        tf.strings.regex_full_match(tokens, _NEGATOR),
        tf.strings.regex_full_match(tokens, _DROPPED),
    )


def text_starts(rows: tf.Tensor) -> tf.Tensor:
    """[tokens] bool: which of a batch's flat tokens start their text (`rows`: sorted)."""
    return tf.not_equal(rows, tf.concat([[-1], rows[:-1]], axis=0))


def negated_positions(rows: tf.Tensor, roles: TokenRoles) -> tf.Tensor:
    """Indices of the tokens in a negation scope, ascending: [negated] int64.

    For the flat tokens of a batch, `rows` being each one's text (sorted). A clause starts at
    each text's first token and at each clause-starting token; a token is negated when an odd
    number of negators precede it in its clause. Neither negators nor clause starts are ever
    negated. Works on the few tokens that start a clause or negate (the events): after each
    event the scope is on or off until the next one.
    """
    starts = roles.starts_clause | text_starts(rows)
    events = tf.where(starts | roles.negator)
    is_negator = tf.cast(tf.gather_nd(roles.negator, events), tf.int32)
    negators_through = tf.cumsum(is_negator)
    is_start = tf.gather_nd(starts, events)
    clause = tf.cumsum(tf.cast(is_start, tf.int32)) - 1
    before_clause = tf.gather_nd(negators_through - is_negator, tf.where(is_start))
    scope = tf.where(tf.equal((negators_through - tf.gather(before_clause, clause)) % 2, 1))
    event = events[:, 0]
    next_event = tf.concat([event[1:], tf.shape(rows, out_type=tf.int64)], axis=0)
    return tf.ragged.range(
        tf.gather_nd(event + 1, scope), tf.gather_nd(next_event, scope)
    ).flat_values


def split_marking_negation(standardized: tf.Tensor) -> tf.RaggedTensor:
    """Words of each standardized text, ``NOT_``-marked inside negation scopes: [N] → [N, None]."""
    tokens = tf.strings.split(standardized)
    flat = normalize_tokens(tokens.flat_values)
    roles = token_roles(flat)
    negated = negated_positions(tokens.value_rowids(), roles)[:, tf.newaxis]
    marked = tf.tensor_scatter_nd_update(
        flat, negated, tf.strings.join([NEGATION_PREFIX, tf.gather_nd(flat, negated)])
    )
    keep = ~roles.dropped
    return tf.RaggedTensor.from_value_rowids(
        tf.boolean_mask(marked, keep),
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
