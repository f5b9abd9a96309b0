"""Text → units inside the serving graph: the one implementation behind every signature.

Keras' TextVectorization (training) builds every unit's string and looks it up. The export
gets the same units and ids from one string lookup per token instead:

* every word that appears in the vocabulary, alone or inside an n-gram, gets a *number* (the
  vocabulary's own id for words that are units themselves); a word of no unit gets number 1;
* the word table maps a token to one int64 that packs its number, its roles (`text.TokenRoles`:
  boundary, clause start, negator), whether it is a unit, and its unit score: the model folded
  to one scalar per unit (`training.model.unit_scores`), so no separate gather of scores;
* a word in a negation scope takes its ``NOT_`` form's packed value from a dense array indexed
  by its number: the marked string is never built;
* an n-gram's key is its word numbers written in base `stride`, and one int64 table for every
  width gives its packed score. A digit 0 or 1 never occurs in a unit's key, so an n-gram with
  a word of no unit is unknown, as its string would be, and keys of different widths differ;
* units past the sequence length, and n-grams across two texts, are weighted 0: nothing is
  padded, dropped or sorted on the serving path.

Tokens the word table misses are the only ones that take the string path: they are normalized
(`text.normalize_tokens`), looked up again and given their roles by `text.token_roles`, exactly
as training treats every token, because the vocabulary holds normalized tokens only.
`explain` names the same units from the same tokens; `verify_export` checks all of it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from training import text as text_lib
from training.text import UNKNOWN_ID

# Packed value layout (int64): score bits | unit | roles | number. Non-negative: bit 63 is free.
_SCORE_BITS = 32
_UNIT_BIT = 32
_ROLE_SHIFT = 33  # starts clause, negator, boundary
_NUMBER_SHIFT = 36
_NO_UNIT_NUMBER = 1  # every word of no unit: an n-gram containing it is unknown
_FIRST_WORD_NUMBER = 2
_MISSING = -1  # the word table's default: a token to take the string path
_STARTS_CLAUSE, _NEGATOR, _DROPPED = 1, 2, 4
_ROLES = (_STARTS_CLAUSE, _NEGATOR, _DROPPED)  # in `text.TokenRoles` order
# In an n-gram's packed value (it has no roles): it begins a longer unit of the vocabulary.
_BEGINS_LONGER = 1 << _ROLE_SHIFT


def _pack(score: float, unit: bool, roles: int = 0, number: int = 0) -> int:
    bits = int(np.array(score, np.float32).view(np.uint32))
    return bits | (int(unit) << _UNIT_BIT) | (roles << _ROLE_SHIFT) | (number << _NUMBER_SHIFT)


def _roles_of(tokens: list[str]) -> np.ndarray:
    """Role bits per token, from the same `text.token_roles` that training applies."""
    if not tokens:
        return np.zeros(0, np.int64)
    roles = text_lib.token_roles(tf.constant(tokens))
    return np.asarray(
        roles.starts_clause.numpy() * _STARTS_CLAUSE
        + roles.negator.numpy() * _NEGATOR
        + roles.dropped.numpy() * _DROPPED,  # as `_ROLES`
        np.int64,
    )


class Units(NamedTuple):
    """The units of a batch: for each width (words, pairs, ...) one entry per word position,
    the unit that starts there. Positions where no unit starts (an n-gram would run past its
    text) or whose unit lies past the sequence length are not `kept` and score 0."""

    rows: tf.Tensor  # [W] int64: each word's text (words: tokens not dropped)
    scores: list[tf.Tensor]  # per width w: [W - w + 1] float32
    unknown: list[tf.Tensor]  # per width: [W - w + 1] bool, kept and out of vocabulary
    kept: list[tf.Tensor]  # per width: [W - w + 1] bool
    units_per_text: tf.Tensor  # [N] int64: units before truncation
    # Only for naming units (`unit_names`): every token as split, which of them are the words,
    # and which are negated.
    tokens: tf.Tensor  # [T] string
    words: tf.Tensor  # [W] int64 indices into `tokens`
    negated: tf.Tensor  # [k] int64 indices into `tokens`

    def folded(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Per word position, the summed score and the unknown count of every unit starting
        there: [W] float32 and [W] int32, so one segment sum per batch gives each text's."""
        score, unknown = self.scores[0], tf.cast(self.unknown[0], tf.int32)
        for width_score, width_unknown in zip(self.scores[1:], self.unknown[1:], strict=True):
            tail = tf.size(score) - tf.size(width_score)  # positions where no n-gram starts
            score += tf.concat([width_score, tf.zeros([tail])], axis=0)
            unknown += tf.concat([tf.cast(width_unknown, tf.int32), tf.zeros([tail], tf.int32)], 0)
        return score, unknown


class TextUnits(tf.Module):  # type: ignore[misc]
    """`units(text)`: the units the model scores, for a vocabulary and its unit scores."""

    def __init__(
        self,
        vocabulary: list[str],
        scores: np.ndarray,
        tokenizer: str,
        ngrams: int,
        sequence_length: int,
    ) -> None:
        super().__init__(name="text_units")
        self._negation = tokenizer == "negation"
        self._ngrams = ngrams
        self._length = sequence_length
        self._unknown_score = float(scores[UNKNOWN_ID])
        numbers = {w: i for i, w in enumerate(vocabulary) if i >= 2 and " " not in w}
        grams = [(i, unit.split(" ")) for i, unit in enumerate(vocabulary) if " " in unit]
        extra = [word for _, words in grams for word in words]
        prefix = text_lib.NEGATION_PREFIX
        extra += [w[len(prefix) :] for w in [*numbers, *extra] if w.startswith(prefix)]
        for word in extra:  # words inside n-grams, and "x" where only "NOT_x" is a unit
            numbers.setdefault(word, len(vocabulary) + len(numbers))
        self._stride = max(len(vocabulary), _FIRST_WORD_NUMBER) + len(numbers)
        if self._stride**ngrams >= 2**63 or self._stride >= 2 ** (63 - _NUMBER_SHIFT):
            raise ValueError(f"{ngrams}-word keys overflow int64 with {self._stride} words")
        self._words = self._word_table(vocabulary, scores, numbers)
        self._negated = self._negated_values(vocabulary, scores, numbers)
        self._grams = self._gram_table(grams, scores, numbers) if grams else None

    def _gram_table(
        self, grams: list[tuple[int, list[str]]], scores: np.ndarray, numbers: dict[str, int]
    ) -> Any:
        """N-gram keys (word numbers in base `stride`) to packed scores. A key that begins a
        longer unit is flagged, so that longer n-grams are looked up only where one can be."""
        values: dict[int, int] = {}
        for unit_id, words in grams:
            key = 0
            for width, word in enumerate(words, start=1):
                key = key * self._stride + numbers[word]
                if 2 <= width < len(words):  # a prefix of this unit
                    entry = values.get(key, _pack(self._unknown_score, False))
                    values[key] = entry | _BEGINS_LONGER
            values[key] = _pack(scores[unit_id], True) | (values.get(key, 0) & _BEGINS_LONGER)
        return _table(list(values), list(values.values()), _pack(self._unknown_score, False))

    def _word_table(
        self, vocabulary: list[str], scores: np.ndarray, numbers: dict[str, int]
    ) -> Any:
        steering = [token for token in text_lib.ROLE_TOKENS if token not in numbers]
        words = [*numbers, *steering] if self._negation else list(numbers)
        roles = _roles_of(words) if self._negation else np.zeros(len(words), np.int64)
        if np.any(roles[: len(numbers)] & _DROPPED):
            raise ValueError("a token that is dropped before vectorizing is a vocabulary unit")
        values = []
        for word, role in zip(words, roles.tolist(), strict=True):
            number = numbers.get(word, _NO_UNIT_NUMBER)
            unit = _FIRST_WORD_NUMBER <= number < len(vocabulary)
            score = scores[number] if unit else self._unknown_score
            values.append(_pack(score, unit, role, number))
        return _table(words, values, default=_MISSING)

    def _negated_values(
        self, vocabulary: list[str], scores: np.ndarray, numbers: dict[str, int]
    ) -> tf.Tensor:
        """Packed value of each number's ``NOT_`` form (a word of no unit where it has none)."""
        values = np.full(self._stride, _pack(self._unknown_score, False, 0, 1), np.int64)
        for word, number in numbers.items():
            negated = numbers.get(text_lib.NEGATION_PREFIX + word)
            if negated is not None:
                unit = negated < len(vocabulary)
                score = scores[negated] if unit else self._unknown_score
                values[number] = _pack(score, unit, 0, negated)
        return tf.constant(values)

    def units(self, text: tf.Tensor) -> Units:
        """The units of a batch of raw texts [N], with their scores.

        Each stage has a name scope of its own, so `bench.ops --by-stage` can say what it costs.
        """
        with tf.name_scope("standardize"):
            if self._negation:
                standardized = text_lib.standardize(text)
            else:
                standardized = text_lib.standardize_tutorial(text)
        with tf.name_scope("split"):
            tokens = tf.strings.split(standardized)
            flat = tokens.flat_values
        with tf.name_scope("word_lookup"):
            packed = self._words.lookup(flat)
        if self._negation:
            with tf.name_scope("unknown_tokens"):
                packed = self._look_up_missed(flat, packed)
            with tf.name_scope("negation"):
                packed, negated, words = self._mark_negation(tokens, packed)
                packed, rows = tf.gather(packed, words), tf.gather(tokens.value_rowids(), words)
        else:
            with tf.name_scope("unknown_tokens"):
                unknown = _pack(self._unknown_score, False, 0, _NO_UNIT_NUMBER)
                packed = tf.where(packed == _MISSING, unknown, packed)
            words = tf.range(tf.size(flat, out_type=tf.int64))
            rows, negated = tokens.value_rowids(), tf.zeros([0], tf.int64)
        with tf.name_scope("ngrams"):
            return self._ngram_units(packed, rows, tokens.nrows())._replace(
                tokens=flat, words=words, negated=negated
            )

    def _look_up_missed(self, flat: tf.Tensor, packed: tf.Tensor) -> tf.Tensor:
        """Tokens the table misses, normalized, looked up again and given their roles."""
        missed = tf.where(packed == _MISSING)
        tokens = text_lib.normalize_tokens(tf.gather_nd(flat, missed))
        again = self._words.lookup(tokens)
        roles = text_lib.token_roles(tokens)
        role_bits = tf.add_n(
            [
                tf.cast(has, tf.int64) * (b << _ROLE_SHIFT)
                for has, b in zip(roles, _ROLES, strict=True)
            ]
        )
        unknown = _pack(self._unknown_score, False, 0, _NO_UNIT_NUMBER)
        values = tf.where(again != _MISSING, again, unknown + role_bits)
        return tf.tensor_scatter_nd_update(packed, missed, values)

    def _mark_negation(
        self, tokens: tf.RaggedTensor, packed: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Each negated token takes its ``NOT_`` form's value. Returns the values, the negated
        tokens' indices and the words' (the tokens not dropped), as `text` marks and drops."""
        roles = tf.bitwise.right_shift(packed, _ROLE_SHIFT)
        token_roles = text_lib.TokenRoles(*(tf.bitwise.bitwise_and(roles, b) != 0 for b in _ROLES))
        negated = text_lib.negated_positions(text_lib.first_of_each_text(tokens), token_roles)
        at = negated[:, tf.newaxis]
        numbers = tf.bitwise.right_shift(tf.gather_nd(packed, at), _NUMBER_SHIFT)
        packed = tf.tensor_scatter_nd_update(packed, at, tf.gather(self._negated, numbers))
        return packed, negated, tf.where(~token_roles.dropped)[:, 0]

    def unit_names(self, units: Units) -> list[tf.Tensor]:
        """Per width, every position's unit as the vectorizer spells it ("not NOT_bad"),
        unknown ones too (explanations show them by name)."""
        tokens = text_lib.normalize_tokens(units.tokens)  # what training spells
        negated = units.negated[:, tf.newaxis]
        marked = tf.tensor_scatter_nd_update(
            tokens,
            negated,
            tf.strings.join([text_lib.NEGATION_PREFIX, tf.gather_nd(tokens, negated)]),
        )
        words = tf.gather(marked, units.words)
        names = [words]
        for width in range(2, self._ngrams + 1):
            parts = [words[offset : tf.size(words) - width + 1 + offset] for offset in range(width)]
            names.append(tf.strings.join(parts, separator=" "))
        return names

    def _ngram_units(self, words: tf.Tensor, rows: tf.Tensor, texts: tf.Tensor) -> Units:
        """Words, then every pair, ... of neighbouring words; `words` packed, `rows` sorted."""
        word_count = tf.math.bincount(rows, minlength=texts, maxlength=texts, dtype=tf.int64)
        row_starts = tf.cumsum(word_count, exclusive=True)
        numbers = tf.bitwise.right_shift(words, _NUMBER_SHIFT)
        packed, kept = [words], []
        keys = numbers
        units_before = tf.zeros_like(word_count)
        for width in range(1, self._ngrams + 1):
            starting = tf.maximum(word_count - width + 1, 0)
            kept.append(
                self._within_text_and_length(rows, width, row_starts, starting, units_before)
            )
            units_before += starting
            if width == 1:
                continue
            with tf.name_scope("ngram_lookup/"):  # a stage of its own (absolute scope)
                keys = keys[:-1] * self._stride + numbers[width - 1 :]
                packed.append(self._look_up_grams(keys, packed[-1], kept[-1], width))
        scores, unknown = [], []
        for width_packed, width_kept in zip(packed, kept, strict=True):
            score = tf.bitcast(tf.cast(width_packed, tf.int32), tf.float32)
            is_unit = tf.bitwise.bitwise_and(width_packed, 1 << _UNIT_BIT) != 0
            scores.append(tf.where(width_kept, score, 0.0))
            unknown.append(width_kept & ~is_unit)
        empty = tf.zeros([0], tf.int64)
        return Units(
            rows, scores, unknown, kept, units_before, tf.zeros([0], tf.string), empty, empty
        )

    def _look_up_grams(
        self, keys: tf.Tensor, shorter: tf.Tensor, kept: tf.Tensor, width: int
    ) -> tf.Tensor:
        """Packed values of the n-grams with these keys, [positions]. From triples on, only
        where the n-gram one word shorter begins a longer unit; elsewhere none is one."""
        unknown = tf.constant(_pack(self._unknown_score, False), tf.int64)
        if self._grams is None:
            return tf.fill(tf.shape(keys), unknown)
        if width == 2:
            found: tf.Tensor = self._grams.lookup(keys)
            return found
        begins = tf.bitwise.bitwise_and(shorter[: tf.size(keys)], _BEGINS_LONGER) != 0
        candidates = tf.where(begins & kept)
        return tf.tensor_scatter_nd_update(
            tf.fill(tf.shape(keys), unknown),
            candidates,
            self._grams.lookup(tf.gather_nd(keys, candidates)),
        )

    def _within_text_and_length(
        self,
        rows: tf.Tensor,
        width: int,
        row_starts: tf.Tensor,
        starting: tf.Tensor,
        units_before: tf.Tensor,
    ) -> tf.Tensor:
        """Which positions start a unit of `width` that the vectorizer keeps: inside its text
        (its last word in the same text) and among the text's first `sequence_length` units
        (words, then pairs, ...: only the last units of the longest texts are cut)."""
        inside = tf.equal(rows[: tf.size(rows) - width + 1], rows[width - 1 :])
        within = tf.clip_by_value(self._length - units_before, 0, starting)
        cut = tf.ragged.range(row_starts + within, row_starts + starting).flat_values
        return tf.tensor_scatter_nd_update(
            inside, cut[:, tf.newaxis], tf.zeros(tf.shape(cut), tf.bool)
        )


def _table(keys: list[Any], values: list[int], default: int) -> Any:
    """A static hash table to int64 values (string or int64 keys, by the keys' type)."""
    key_type = tf.string if keys and isinstance(keys[0], str) else tf.int64
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, key_type), tf.constant(values, tf.int64)
        ),
        default_value=default,
    )
