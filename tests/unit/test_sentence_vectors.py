"""Sentence embeddings for choosing an answer are computed once per process: a question embeds
only the sentences no earlier question brought, with the same vectors. Questions of concurrent
turns are embedded together."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from knowledge.embeddings import BatchedQueries, E5Embedder, SentenceVectors

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


class Calls(Counting):
    """The real embedder, recording each call's texts, slowed so that questions asked from
    other threads meanwhile queue up as they do under load."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        self.calls.append(list(texts))
        time.sleep(0.05)
        return super().embed(texts, query=query)


def test_questions_asked_together_share_forward_passes_with_the_same_vectors() -> None:
    embedder = Calls()
    batched = BatchedQueries(embedder)
    questions = [f"How long does delivery to zone {n} take?" for n in range(12)]
    with ThreadPoolExecutor(12) as pool:
        vectors = list(pool.map(lambda q: batched.embed([q], query=True), questions))
    assert sorted(t for call in embedder.calls for t in call) == sorted(questions)
    assert len(embedder.calls) < len(questions) / 2  # they were batched
    direct = embedder.inner.embed(questions, query=True)
    for question, vector in zip(questions, vectors, strict=True):
        assert vector.shape == (1, embedder.dim)
        assert float(vector[0] @ direct[questions.index(question)]) > 0.999
    # A lone question is embedded at once; passages are not batched with questions.
    started = time.perf_counter()
    batched.embed(["Where is my parcel?"], query=True)
    assert time.perf_counter() - started < 1.0
    embedder.calls.clear()
    batched.embed(["Returns are free within 30 days."])
    assert embedder.calls == [["Returns are free within 30 days."]]
