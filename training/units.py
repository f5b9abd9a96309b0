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
* the units are laid out as [widths, words]: for each word, the unit of each width that starts
  there (sentinel words past the batch's end); units past the sequence length, and n-grams
  across two texts, are weighted 0, so nothing is padded or sorted on the serving path, and
  each text's sum is one segment sum over its words.

Tokens the word table misses are unknown words. Only those that are not plain ASCII words take
the string path: they are normalized (`text.normalize_tokens`), looked up again and given their
roles by `text.token_roles`, exactly as training treats every token, because the vocabulary
holds normalized tokens only (a plain ASCII word is its own normal form, with no role).
`explain` names the same units from the same tokens; `verify_export` checks all of it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from training import text as text_lib
from training.text import UNKNOWN_ID

# Packed value layout (int64): score bits | unit | roles | number. Non-negative: bit 63 is free.
_UNIT_BIT = 32
_ROLE_SHIFT = 33  # starts clause, negator, boundary
_NUMBER_SHIFT = 36
_NO_UNIT_NUMBER = 1  # every word of no unit: an n-gram containing it is unknown
_FIRST_WORD_NUMBER = 2
_MISSING = -1  # the word table's default: a token to take the string path
_STARTS_CLAUSE, _NEGATOR, _DROPPED = 1, 2, 4
_ROLES = (_STARTS_CLAUSE, _NEGATOR, _DROPPED)  # in `text.TokenRoles` order


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
    """The units of a batch, as [widths, words]: row w - 1 holds, for each word, the unit of w
    words that starts there (words, then pairs, ...). Where no unit starts (it would run past
    its text) or it lies past the sequence length, it is not `kept` and scores 0."""

    rows: tf.Tensor  # [W] int64: each word's text (words: the tokens not dropped)
    scores: tf.Tensor  # [widths, W] float32
    unknown: tf.Tensor  # [widths, W] bool: kept and out of vocabulary
    kept: tf.Tensor  # [widths, W] bool
    units_per_text: tf.Tensor  # [N] int64: units before truncation
    # Only for naming units (`TextUnits.unit_names`): every token as split, which of them are
    # the words, and which are negated.
    tokens: tf.Tensor  # [T] string
    words: tf.Tensor  # [W, 1] int64 indices into `tokens` (gather_nd's, cheaper than gather's)
    negated: tf.Tensor  # [k] int64 indices into `tokens`


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
        """N-gram keys (word numbers in base `stride`) to packed scores, every width in one."""
        keys = []
        for _, words in grams:
            key = 0
            for word in words:
                key = key * self._stride + numbers[word]
            keys.append(key)
        values = [_pack(scores[unit_id], True) for unit_id, _ in grams]
        return _table(keys, values, default=_pack(self._unknown_score, False))

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
        values = np.full(
            self._stride, _pack(self._unknown_score, False, 0, _NO_UNIT_NUMBER), np.int64
        )
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
        with tf.name_scope("split"):  # the op itself: its row ids are all that is needed
            split = tf.raw_ops.StringSplitV2(input=standardized, sep="")
            tokens, rows = split.values, split.indices[:, 0]
        with tf.name_scope("word_lookup"):
            packed = self._words.lookup(tokens)
        if self._negation:
            with tf.name_scope("unknown_tokens"):
                packed = self._look_up_missed(tokens, packed)
            with tf.name_scope("negation"):
                packed, negated, words = self._mark_negation(rows, packed)
                packed, rows = tf.gather_nd(packed, words), tf.gather_nd(rows, words)
        else:
            with tf.name_scope("unknown_tokens"):
                unknown = _pack(self._unknown_score, False, 0, _NO_UNIT_NUMBER)
                packed = tf.where(packed == _MISSING, unknown, packed)
            words = tf.range(tf.size(tokens, out_type=tf.int64))[:, tf.newaxis]
            negated = tf.zeros([0], tf.int64)
        with tf.name_scope("ngrams"):
            units = self._ngram_units(packed, rows, tf.shape(text, out_type=tf.int64)[0])
        return units._replace(tokens=tokens, words=words, negated=negated)

    def _look_up_missed(self, flat: tf.Tensor, packed: tf.Tensor) -> tf.Tensor:
        """Tokens the table misses are unknown words; those that are not plain ASCII words are
        normalized, looked up again and given their roles, as training treats every token."""
        missed = tf.where(packed == _MISSING)
        tokens = tf.gather_nd(flat, missed)
        special = tf.where(~tf.strings.regex_full_match(tokens, text_lib.PLAIN_TOKEN))
        tokens = text_lib.normalize_tokens(tf.gather_nd(tokens, special))
        again = self._words.lookup(tokens)
        role_bits = tf.add_n(
            [
                tf.cast(has, tf.int64) * (b << _ROLE_SHIFT)
                for has, b in zip(text_lib.token_roles(tokens), _ROLES, strict=True)
            ]
        )
        unknown = tf.constant(_pack(self._unknown_score, False, 0, _NO_UNIT_NUMBER), tf.int64)
        values = tf.tensor_scatter_nd_update(
            tf.fill(tf.shape(missed)[:1], unknown),
            special,
            tf.where(again != _MISSING, again, unknown + role_bits),
        )
        return tf.tensor_scatter_nd_update(packed, missed, values)

    def _mark_negation(
        self, rows: tf.Tensor, packed: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Each negated token takes its ``NOT_`` form's value. Returns the values, the negated
        tokens' indices and the words' (the tokens not dropped), as `text` marks and drops."""
        roles = tf.bitwise.right_shift(packed, _ROLE_SHIFT)
        token_roles = text_lib.TokenRoles(*(tf.bitwise.bitwise_and(roles, b) != 0 for b in _ROLES))
        negated = text_lib.negated_positions(rows, token_roles)
        at = negated[:, tf.newaxis]
        numbers = tf.bitwise.right_shift(tf.gather_nd(packed, at), _NUMBER_SHIFT)
        packed = tf.tensor_scatter_nd_update(packed, at, tf.gather(self._negated, numbers))
        return packed, negated, tf.where(~token_roles.dropped)

    def unit_names(self, units: Units) -> tf.Tensor:
        """[widths, W]: every position's unit as the vectorizer spells it ("not NOT_bad"),
        unknown ones too (explanations show them by name)."""
        tokens = text_lib.normalize_tokens(units.tokens)  # what training spells
        at = units.negated[:, tf.newaxis]
        marked = tf.tensor_scatter_nd_update(
            tokens, at, tf.strings.join([text_lib.NEGATION_PREFIX, tf.gather_nd(tokens, at)])
        )
        words = self._extended(tf.gather_nd(marked, units.words), "")
        names = [words[0]]
        for width in range(2, self._ngrams + 1):
            names.append(tf.strings.join(words[:width], separator=" "))
        return tf.stack(names)

    def _extended(self, values: tf.Tensor, sentinel: Any) -> list[tf.Tensor]:
        """`values` [W] and the same shifted by 1, 2, ... up to the widest unit: the k-th word
        of the unit starting at each position, past the batch's last word a `sentinel`."""
        padding = tf.fill([self._ngrams - 1], tf.constant(sentinel, values.dtype))
        padded = tf.concat([values, padding], axis=0)
        last = self._ngrams - 1
        return [padded[k : k - last] if k < last else padded[k:] for k in range(self._ngrams)]

    def _ngram_units(self, words: tf.Tensor, rows: tf.Tensor, texts: tf.Tensor) -> Units:
        """Every unit of each width starting at each word; `words` packed, `rows` sorted."""
        word_rows = self._extended(rows, -1)  # -1: no text
        numbers = self._extended(tf.bitwise.right_shift(words, _NUMBER_SHIFT), 0)
        keys, key = [], numbers[0]
        for width in range(2, self._ngrams + 1):
            key = key * self._stride + numbers[width - 1]
            keys.append(key)
        packed = words[tf.newaxis]
        if keys:
            with tf.name_scope("ngram_lookup/"):  # a stage of its own (absolute scope)
                stacked = tf.stack(keys)
                unknown = tf.constant(_pack(self._unknown_score, False), tf.int64)
                found = (
                    tf.fill(tf.shape(stacked), unknown)
                    if self._grams is None
                    else self._grams.lookup(stacked)
                )
                packed = tf.concat([packed, found], axis=0)
        word_count = tf.math.bincount(rows, minlength=texts, maxlength=texts, dtype=tf.int64)
        inside = tf.stack([tf.equal(word_rows[0], r) for r in word_rows])
        kept, units_per_text = self._within_length(inside, word_count)
        score = tf.bitcast(tf.cast(packed, tf.int32), tf.float32)
        is_unit = tf.bitwise.bitwise_and(packed, 1 << _UNIT_BIT) != 0
        empty = tf.zeros([0], tf.int64)
        return Units(
            rows,
            tf.where(kept, score, 0.0),
            kept & ~is_unit,
            kept,
            units_per_text,
            tf.zeros([0], tf.string),
            empty,
            empty,
        )

    def _within_length(
        self, inside: tf.Tensor, word_count: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Which units inside their text the vectorizer keeps: a text's first `sequence_length`
        (words, then pairs, ...: only the last units of its longest texts are cut, as index
        ranges); and each text's units before the cut."""
        widths = tf.range(self._ngrams, dtype=tf.int64)[:, tf.newaxis]
        starting = tf.maximum(word_count[tf.newaxis] - widths, 0)  # [widths, N]
        before = tf.cumsum(starting, axis=0, exclusive=True)
        within = tf.clip_by_value(self._length - before, 0, starting)
        words = tf.shape(inside, out_type=tf.int64)[1]
        first = tf.cumsum(word_count, exclusive=True)[tf.newaxis] + widths * words
        cut = tf.ragged.range(
            tf.reshape(first + within, [-1]), tf.reshape(first + starting, [-1])
        ).flat_values[:, tf.newaxis]
        flat = tf.tensor_scatter_nd_update(
            tf.reshape(inside, [-1]), cut, tf.zeros(tf.shape(cut)[:1], tf.bool)
        )
        return tf.reshape(flat, tf.shape(inside)), tf.reduce_sum(starting, axis=0)


def _table(keys: list[Any], values: list[int], default: int) -> Any:
    """A static hash table to int64 values (string or int64 keys, by the keys' type)."""
    key_type = tf.string if keys and isinstance(keys[0], str) else tf.int64
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, key_type), tf.constant(values, tf.int64)
        ),
        default_value=default,
    )
