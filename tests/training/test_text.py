"""The tokenizer's rules, one by one: what the single standardization pass isolates, how tokens
are normalized, what each token does, and the negation scopes computed from those roles."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tensorflow as tf

from training import text as text_lib


def _tokens(text: str) -> list[str]:
    standardized = text_lib.standardize(tf.constant([text]))
    return [token.decode() for token in tf.strings.split(standardized).to_list()[0]]


def _words(text: str) -> list[str]:
    split = text_lib.split_marking_negation(text_lib.standardize(tf.constant([text])))
    return [word.decode() for word in split.to_list()[0]]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Great, fun! END.", ["great", ",", "fun", "!", "end", "."]),
        ("Great, fun!!! END?!", ["great", ",", "fun", "!!!", "end", "?", "!"]),
        ("love it :-) ok :( re:do", ["love", "it", ":-)", "ok", ":(", "re", ":", "do"]),
        ("good👍🏽😡x", ["good", "👍", "🏽", "😡", "x"]),
        ("good<br /><br />bad", ["good", "<br", "/>", "<br", "/>", "bad"]),
        ("well--made / cheap", ["well", "-", "-", "made", "/", "cheap"]),
        ("a<brother", ["a", "<", "brother"]),
        ("ÉNORME — “Film”…", ["Énorme", "—", "“", "film", "”", "…"]),
        ("don't 'quote'", ["don't", "'quote'"]),
    ],
)
def test_one_pass_isolates_every_punctuation_character(text: str, tokens: list[str]) -> None:
    assert _tokens(text) == tokens


def test_words_are_lower_case_in_full_unicode() -> None:
    assert _words("ÉNORME Succès, GRAND ÇA") == ["énorme", "succès", "grand", "ça"]


@pytest.mark.parametrize(
    ("token", "normalized"),
    [
        ("don\u2019t", "don't"),
        ("'great'", "great"),
        ("80's", "80s"),
        ("rock'n'roll", "rock'n'roll"),
        ("''", ""),
        ("l\u2019été", "lété"),
        ("ÉTÉ's", "étés"),
    ],
)
def test_tokens_keep_apostrophes_only_between_two_letters(token: str, normalized: str) -> None:
    once = text_lib.normalize_tokens(tf.constant([token]))
    assert once.numpy()[0].decode() == normalized
    assert text_lib.normalize_tokens(once).numpy().tolist() == once.numpy().tolist(), "idempotent"


def test_roles_belong_to_tokens() -> None:
    tokens = [".", "!!", ":)", "👍", "<br", "/>", "-", "but", "not", "didn't", "n't", "dont",
              "dnt", "zero", "lacks", "", "good", "nothing's", "🏽"]  # fmt: skip
    roles = text_lib.token_roles(tf.constant(tokens))
    starts, negator, dropped = (np.asarray(r).tolist() for r in roles)
    assert [t for t, s in zip(tokens, starts, strict=True) if s] == [
        ".", "!!", ":)", "👍", "<br", "/>", "but"
    ]  # fmt: skip
    assert [t for t, n in zip(tokens, negator, strict=True) if n] == [
        "not", "didn't", "n't", "dont", "dnt", "zero", "lacks"
    ]  # fmt: skip
    assert [t for t, d in zip(tokens, dropped, strict=True) if d] == [
        ".", "<br", "/>", "-", "", "🏽"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Soooo good!!! 😍😍", ["soooo", "good", "!!!", "😍", "😍"]),
        ("not happy :-( at all", ["not", "NOT_happy", ":(", "at", "all"]),
        ("not happy 😠 at all", ["not", "NOT_happy", "😠", "at", "all"]),
        ("dont buy it", ["dont", "NOT_buy", "NOT_it"]),
        ("it did n't work", ["it", "did", "n't", "NOT_work"]),
        ("don\u00b4t like it, 👍🏻 tho", ["don't", "NOT_like", "NOT_it", "👍", "tho"]),
        ("zero problems so far", ["zero", "NOT_problems", "NOT_so", "NOT_far"]),
        ("Great :D", ["great", ":d"]),
        ("sad :') ok", ["sad", ":)", "ok"]),
    ],
)
def test_marks_and_informal_negation_are_units(text: str, words: list[str]) -> None:
    """Emoticons, emoji and "!!" end a clause and stay as units; informal negators negate."""
    assert _words(text) == words


def _scopes_one_by_one(rows: list[int], starts: list[bool], negators: list[bool]) -> list[int]:
    """The rule read literally: count the negators since the clause began, token by token."""
    negated, count = [], 0
    for i, (row, start, negator) in enumerate(zip(rows, starts, negators, strict=True)):
        if start or i == 0 or rows[i - 1] != row:
            count = 0
        if count % 2 == 1 and not negator and not start:
            negated.append(i)
        count += negator
    return negated


def test_negation_scopes_from_the_events_equal_the_rule_read_token_by_token() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        lengths = rng.integers(0, 12, size=rng.integers(1, 6))
        rows = np.repeat(np.arange(len(lengths)), lengths)
        starts, negators = rng.random(len(rows)) < 0.15, rng.random(len(rows)) < 0.2
        roles = text_lib.TokenRoles(tf.constant(starts), tf.constant(negators), tf.constant(starts))
        found = text_lib.negated_positions(tf.constant(rows, tf.int64), roles)
        expected = _scopes_one_by_one(rows.tolist(), starts.tolist(), negators.tolist())
        assert found.numpy().tolist() == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not well-made, good", ["not", "NOT_well", "NOT_made", "good"]),
        ("isn\u2019t 'great'... fun", ["isn't", "NOT_great", "fun"]),
        ("not bad —but fine", ["not", "NOT_bad", "but", "fine"]),
    ],
)
def test_punctuation_in_a_scope_is_dropped_not_marked(text: str, words: list[str]) -> None:
    assert _words(text) == words


def test_plain_tokens_are_their_own_normal_form_with_no_role_unless_role_tokens() -> None:
    """What the export relies on when it skips normalizing a plain token its lookup missed."""
    rng = np.random.default_rng(1)
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789")
    samples = ["".join(rng.choice(alphabet, size=rng.integers(1, 12))) for _ in range(300)]
    samples += ["nt", "but", "not", "dont", "soooo", "10", "zzz"]
    plain = [t for t in samples if re.fullmatch(text_lib.PLAIN_TOKEN, t)]
    assert len(plain) == len(samples)
    others = [t for t in plain if t not in text_lib.ROLE_TOKENS]
    normalized = text_lib.normalize_tokens(tf.constant(others)).numpy()
    assert [t.decode() for t in normalized] == others
    roles = text_lib.token_roles(tf.constant(others))
    assert not any(np.asarray(role).any() for role in roles)
