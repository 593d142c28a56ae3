"""Sentence embeddings for choosing an answer are computed once per process: a question embeds
only the sentences no earlier question brought, with the same vectors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from knowledge.embeddings import E5Embedder, SentenceVectors

pytestmark = pytest.mark.unit


class Counting:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        self.inner = E5Embedder()
        self.name, self.dim = self.inner.name, self.inner.dim
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        self.embedded += texts
        return self.inner.embed(texts, query=query)


def test_each_sentence_is_embedded_once_with_the_same_vector() -> None:
    embedder = Counting()
    vectors = SentenceVectors(embedder)
    first = ["Returns are free within 30 days.", "收到商品后30天内可以免费退货。"]
    second = ["Refunds take 5 business days.", "Returns are free within 30 days.",
              "Refunds take 5 business days."]
    a = vectors.embed(first)
    b = vectors.embed(second)
    assert embedder.embedded == [*first, "Refunds take 5 business days."]
    assert b.shape == (3, embedder.dim) and np.array_equal(b[1], a[0])
    assert np.array_equal(b[0], b[2])
    direct = embedder.inner.embed(second)
    assert np.allclose(b, direct, atol=1e-5)
    assert vectors.embed([]).shape == (0, embedder.dim)


def test_the_least_recently_used_sentences_leave_first() -> None:
    embedder = Counting()
    vectors = SentenceVectors(embedder, size=2)
    vectors.embed(["one sentence here.", "two sentences here."])
    vectors.embed(["one sentence here."])  # used again: "two" is now the oldest
    vectors.embed(["three sentences here."])
    vectors.embed(["one sentence here.", "two sentences here."])
    assert embedder.embedded == ["one sentence here.", "two sentences here.",
                                 "three sentences here.", "two sentences here."]
