"""Sentence vectors are embedded once per deployment: the vector cache contract against both
caches (SQLite, and Redis on 127.0.0.1:6379 under a prefix of its own), and what
``SentenceVectors`` does with one: reads what it has, embeds and adds what it lacks, and
computes on when the cache fails."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knowledge.embeddings import SentenceVectors
from knowledge.vector_cache import RedisVectorCache, SQLiteVectorCache, VectorCache, key
from tests.contract.vector_cache import VectorCacheContract
from tests.servers import REDIS_URL, require_redis

pytestmark = pytest.mark.unit


class TestSQLiteVectorCache(VectorCacheContract):
    @pytest.fixture
    def pair(self, tmp_path: Path) -> Iterator[Any]:
        made: list[SQLiteVectorCache] = []

        def make() -> tuple[SQLiteVectorCache, SQLiteVectorCache]:
            made.extend(SQLiteVectorCache(tmp_path / "kb" / "sentence_vectors.db")
                        for _ in range(2))
            return made[-2], made[-1]

        yield make
        for cache in made:
            cache.close()


class TestRedisVectorCache(VectorCacheContract):
    @pytest.fixture
    def pair(self) -> Iterator[Any]:
        require_redis()
        prefix = f"test-{uuid.uuid4().hex[:8]}"
        made: list[RedisVectorCache] = []

        def make() -> tuple[RedisVectorCache, RedisVectorCache]:
            made.extend(RedisVectorCache(REDIS_URL, prefix=prefix) for _ in range(2))
            return made[-2], made[-1]

        yield make
        if made:
            client = made[0]._redis
            for name in client.scan_iter(f"{prefix}:*"):
                client.delete(name)
        for cache in made:
            cache.close()

    def test_each_vector_expires_unless_written_again(self, pair: Any) -> None:
        writer, _ = pair()
        writer.put({key("e5", "a sentence"): np.ones(4, dtype=np.float32)})
        ttl = writer._redis.ttl(writer._prefix + key("e5", "a sentence"))
        assert 0 < ttl <= writer.ttl_s


class CountingEmbedder:
    name, dim = "counting", 4

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        self.embedded += texts
        return np.asarray([[len(t), 1.0, 0.0, float(query)] for t in texts], dtype=np.float32)


class BrokenCache:
    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        raise ConnectionError("cache down")

    def put(self, vectors: Any) -> None:
        raise ConnectionError("cache down")

    def close(self) -> None:
        pass


def test_a_second_process_reads_the_vectors_instead_of_embedding_them(tmp_path: Path) -> None:
    path = tmp_path / "sentence_vectors.db"
    first, second = CountingEmbedder(), CountingEmbedder()
    sentences = ["Returns are free.", "退货免费。", "Returns are free."]
    made = SentenceVectors(first, cache=SQLiteVectorCache(path)).embed(sentences)
    assert first.embedded == ["Returns are free.", "退货免费。"]  # each distinct one once
    read = SentenceVectors(second, cache=SQLiteVectorCache(path)).embed(sentences)
    assert second.embedded == [] and np.array_equal(read, made)
    fresh = SentenceVectors(second, cache=SQLiteVectorCache(path)).embed(
        ["Refunds take 5 days.", "退货免费。"])
    assert second.embedded == ["Refunds take 5 days."]  # only what no process embedded
    assert np.array_equal(fresh[1], made[1])


def test_vectors_of_another_embedder_are_not_taken(tmp_path: Path) -> None:
    cache: VectorCache = SQLiteVectorCache(tmp_path / "v.db")
    SentenceVectors(CountingEmbedder(), cache=cache).embed(["Returns are free."])
    other = CountingEmbedder()
    other.name = "another model"
    SentenceVectors(other, cache=cache).embed(["Returns are free."])
    assert other.embedded == ["Returns are free."]


def test_a_failing_cache_costs_the_embedding_never_the_answer(caplog: Any) -> None:
    embedder = CountingEmbedder()
    vectors = SentenceVectors(embedder, cache=BrokenCache())
    rows = vectors.embed(["Returns are free.", "Refunds take 5 days."])
    assert rows.shape == (2, 4) and embedder.embedded == ["Returns are free.",
                                                          "Refunds take 5 days."]
    vectors.embed(["A third sentence."])
    assert sum("sentence vector cache" in r.getMessage() for r in caplog.records) == 1
