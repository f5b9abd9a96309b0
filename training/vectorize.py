"""Vectorize: the vocabulary from the training rows, then every split's unit counts, in streams.

The vocabulary is what TextVectorization's `adapt` would learn (the most frequent units of the
training texts: words, pairs and triples as the model's tokenizer makes them), counted in a
stream instead: every word gets a number, every n-gram an int64 key of its words' numbers, and
the counts of the distinct keys are merged chunk by chunk, so memory follows the distinct units,
not the rows (`adapt` holds every distinct unit *string* in a hash table: 2 GB on the mix). The
layer then gets the vocabulary with `set_vocabulary` and tokenizes every split itself, so
training sees exactly the ids the exported graph computes.

A split's texts become a sparse count matrix (texts x vocabulary: int32 indices, float32
counts), built chunk by chunk. The model is a mean over its units, so a text's ids in any order
are the same input: the NBSVM start, the Keras batches and every score read this one matrix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
import tensorflow as tf

from training.data import RunRow
from training.model import Hyperparameters, build_vectorizer, tokenize, words
from training.text import PADDING_ID

logger = logging.getLogger(__name__)

CHUNK = 4096  # texts tokenized per TensorFlow call
_MERGE_EVERY = 16  # chunks of n-gram keys kept before they are merged into the counts


class VocabularyError(ValueError):
    """The training texts cannot give a vocabulary (none, or too many distinct words)."""


def chunked(items: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _UnitCounter:
    """Counts of every unit of width 1..n, as sorted unique int64 keys and their counts."""

    def __init__(self, ngrams: int) -> None:
        self.ngrams = ngrams
        # Keys are word numbers written in base `stride`: n numbers must fit in 63 bits.
        self.stride = 1 << (63 // ngrams) if ngrams > 1 else 1 << 62
        self.numbers: dict[bytes, int] = {}
        self._pending: list[list[np.ndarray]] = [[] for _ in range(ngrams)]
        self._keys = [np.zeros(0, np.int64) for _ in range(ngrams)]
        self._counts = [np.zeros(0, np.int64) for _ in range(ngrams)]

    def add(self, tokens: tf.RaggedTensor) -> None:
        flat = tokens.flat_values.numpy().tolist()
        numbers = self.numbers
        ids = np.fromiter((numbers.setdefault(w, len(numbers)) for w in flat), np.int64, len(flat))
        if len(numbers) > self.stride:
            raise VocabularyError(
                f"more than {self.stride} distinct words: too many for {self.ngrams}-word units "
                "(use fewer --ngrams)"
            )
        rows = tokens.value_rowids().numpy()
        for width in range(1, self.ngrams + 1):
            starts = len(ids) - width + 1
            if starts <= 0:
                continue
            key = ids[:starts].copy()
            for offset in range(1, width):
                key = key * self.stride + ids[offset : offset + starts]
            # Rows are sorted: a unit lies in one text when its first and last word do.
            self._pending[width - 1].append(key[rows[:starts] == rows[width - 1 :]])
        if len(self._pending[0]) >= _MERGE_EVERY:
            self._merge()

    def _merge(self) -> None:
        for width in range(self.ngrams):
            if not self._pending[width]:
                continue
            keys, counts = np.unique(np.concatenate(self._pending[width]), return_counts=True)
            merged = np.concatenate([self._keys[width], keys])
            totals = np.concatenate([self._counts[width], counts])
            self._keys[width], inverse = np.unique(merged, return_inverse=True)
            self._counts[width] = np.bincount(inverse, weights=totals).astype(np.int64)
            self._pending[width] = []

    def most_frequent(self, size: int) -> tuple[list[str], int]:
        """The `size` most frequent units (ties: shorter, then first seen), and how many
        distinct units there were."""
        self._merge()
        counts = np.concatenate(self._counts)
        order = np.argsort(-counts, kind="stable")[:size]
        widths = np.concatenate([np.full(len(k), w + 1) for w, k in enumerate(self._keys)])
        keys = np.concatenate(self._keys)
        spelled = [w.decode("utf-8") for w in self.numbers]
        units = []
        for key, width in zip(keys[order].tolist(), widths[order].tolist(), strict=True):
            digits = []
            for _ in range(width):
                key, digit = divmod(key, self.stride)
                digits.append(spelled[digit])
            units.append(" ".join(reversed(digits)))
        return units, len(counts)


def adapt_vectorizer(params: Hyperparameters, texts: Iterable[str]) -> Any:
    """A vectorizer whose vocabulary is the most frequent units of `texts` (training only)."""
    counter = _UnitCounter(params.ngrams)
    for chunk in chunked(texts):
        counter.add(words(params, tf.constant(chunk)))
    # TextVectorization reserves two ids: padding and the unknown unit.
    units, distinct = counter.most_frequent(params.max_tokens - 2)
    if not units:
        raise VocabularyError("no words in the training texts")
    vectorizer = build_vectorizer(params)
    vectorizer.set_vocabulary(units)
    logger.info("Vocabulary: %d units of %d distinct", vectorizer.vocabulary_size(), distinct)
    return vectorizer


@dataclass(frozen=True)
class Counts:
    """Unit counts of some rows (texts x vocabulary) and what is known of each row."""

    matrix: sp.csr_matrix
    labels: np.ndarray  # float32 0/1
    corpora: np.ndarray  # str
    domains: np.ndarray  # str
    kinds: np.ndarray  # str: data.ROW, data.SNIPPET, ...

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """Units per text (the unknown unit included): what the model's mean divides by."""
        return np.asarray(self.matrix.sum(axis=1), dtype=np.float64).ravel()

    def select(self, mask: np.ndarray) -> Counts:
        return Counts(
            self.matrix[mask],
            self.labels[mask],
            self.corpora[mask],
            self.domains[mask],
            self.kinds[mask],
        )

    @staticmethod
    def stack(parts: Sequence[Counts]) -> Counts:
        return Counts(
            sp.vstack([p.matrix for p in parts], format="csr"),
            *(np.concatenate([getattr(p, name) for p in parts])
              for name in ("labels", "corpora", "domains", "kinds")),
        )  # fmt: skip


class _Builder:
    def __init__(self, columns: int) -> None:
        self.columns = columns
        self.blocks: list[sp.csr_matrix] = []
        self.rows: list[RunRow] = []
        self.facts: list[tuple[int, str, str, str]] = []

    def counts(self) -> Counts:
        matrix = (
            sp.vstack(self.blocks, format="csr")
            if self.blocks
            else sp.csr_matrix((0, self.columns), dtype=np.float32)
        )
        matrix.indices = matrix.indices.astype(np.int32)
        labels, corpora, domains, kinds = zip(*self.facts, strict=True) if self.facts else ([],) * 4
        return Counts(
            matrix,
            np.asarray(labels, np.float32),
            np.asarray(corpora, dtype=str),
            np.asarray(domains, dtype=str),
            np.asarray(kinds, dtype=str),
        )


def count_units(
    vectorizer: Any,
    params: Hyperparameters,
    rows: Iterable[RunRow],
    group_of: Callable[[RunRow], str | None],
) -> dict[str, Counts]:
    """One pass over `rows`: each row's unit counts (as the model sees its ids), collected in
    the group `group_of` names (None: skipped)."""
    builders: dict[str, _Builder] = {}
    for chunk in chunked((row, group) for row in rows if (group := group_of(row)) is not None):
        matrix = counts_matrix(
            tokenize(vectorizer, params, tf.constant([row.text for row, _ in chunk])),
            params.max_tokens,
        )
        groups = np.array([group for _, group in chunk])
        for group in dict.fromkeys(groups.tolist()):
            builder = builders.setdefault(group, _Builder(params.max_tokens))
            picked = np.flatnonzero(groups == group)
            builder.blocks.append(matrix[picked])
            builder.facts += [
                (row.label, row.corpus, row.domain, row.kind)
                for row, _ in (chunk[i] for i in picked.tolist())
            ]
    return {group: builder.counts() for group, builder in builders.items()}


def counts_matrix(token_ids: Any, columns: int) -> sp.csr_matrix:
    """Texts x units counts of a batch's ids (ragged, or padded: padding is not counted)."""
    if isinstance(token_ids, tf.RaggedTensor):
        rows, ids = token_ids.value_rowids().numpy(), token_ids.flat_values.numpy()
    else:
        dense = token_ids.numpy()
        rows, ids = np.nonzero(dense != PADDING_ID)
        ids = dense[rows, ids]
    matrix = sp.csr_matrix(
        (np.ones(len(ids), np.float32), (rows, ids)), shape=(int(token_ids.shape[0]), columns)
    )
    matrix.sum_duplicates()
    return matrix
