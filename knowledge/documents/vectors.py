"""Exact nearest-neighbour search over the chunk vectors, in memory (numpy).

The embedded document index keeps one ``Vectors`` per open index, loaded from its stored
vectors on the first vector search and kept in step with every write. Rows are unit length,
so a dot product is the cosine; a language code and one boolean column per tag sit beside
them, so filters cost one mask, not a query. Removal moves the last row into the hole, so
every write is O(1).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np


class Vectors:
    """One float32 row per chunk that has a vector, found by the chunk's primary key."""

    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self.size = 0
        self.matrix = np.zeros((capacity, dim), dtype=np.float32)
        self.lang = np.zeros(capacity, dtype=np.int32)
        self.lang_codes: dict[str, int] = {}
        self.tag_rows: dict[str, np.ndarray] = {}
        self.pks: list[int] = []
        self.tags: list[tuple[str, ...]] = []
        self.row: dict[int, int] = {}

    @classmethod
    def load(cls, dim: int, rows: list[tuple[int, str, str, bytes]]) -> Vectors:
        """From ``(pk, lang, tags as JSON, float32 blob)`` rows, in one pass."""
        vectors = cls(dim, capacity=max(1024, len(rows)))
        if rows:
            matrix = np.frombuffer(b"".join(row[3] for row in rows), dtype="<f4")
            matrix = matrix.reshape(len(rows), dim)
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            vectors.matrix[:len(rows)] = matrix / np.where(norms == 0, 1, norms)
        for at, (pk, lang, tags, _) in enumerate(rows):
            vectors.row[pk] = at
            vectors.pks.append(pk)
            vectors.tags.append(())
            vectors.lang[at] = vectors.lang_codes.setdefault(lang, len(vectors.lang_codes) + 1)
            vectors._set_tags(at, tuple(dict.fromkeys(json.loads(tags))))
        vectors.size = len(rows)
        return vectors

    def _grow(self) -> None:
        self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
        self.lang = np.concatenate([self.lang, np.zeros_like(self.lang)])
        for tag, rows in self.tag_rows.items():
            self.tag_rows[tag] = np.concatenate([rows, np.zeros_like(rows)])

    def _set_tags(self, at: int, tags: tuple[str, ...]) -> None:
        for tag in self.tags[at]:
            self.tag_rows[tag][at] = False
        for tag in tags:
            if tag not in self.tag_rows:
                self.tag_rows[tag] = np.zeros(len(self.matrix), dtype=bool)
            self.tag_rows[tag][at] = True
        self.tags[at] = tags

    def put(self, pk: int, vector: np.ndarray, lang: str, tags: Iterable[str]) -> None:
        at = self.row.get(pk)
        if at is None:
            if self.size == len(self.matrix):
                self._grow()
            at, self.size = self.size, self.size + 1
            self.row[pk] = at
            self.pks.append(pk)
            self.tags.append(())
        norm = float(np.linalg.norm(vector))
        self.matrix[at] = vector / norm if norm else vector
        self.lang[at] = self.lang_codes.setdefault(lang, len(self.lang_codes) + 1)
        self._set_tags(at, tuple(dict.fromkeys(tags)))

    def remove(self, pk: int) -> None:
        at = self.row.pop(pk, None)
        if at is None:
            return
        last = self.size - 1
        if at != last:
            self.matrix[at] = self.matrix[last]
            self.lang[at] = self.lang[last]
            self.pks[at] = self.pks[last]
            self._set_tags(at, self.tags[last])
            self.row[self.pks[at]] = at
        self._set_tags(last, ())
        self.pks.pop()
        self.tags.pop()
        self.size = last

    def nearest(self, query: np.ndarray, n: int, lang: str | None,
                tags: frozenset[str]) -> list[int]:
        size = self.size
        if size == 0:
            return []
        norm = float(np.linalg.norm(query))
        # einsum rather than BLAS: one thread, whose latency holds up on a busy machine where
        # a multi-threaded matrix-vector product (memory-bound anyway) has long tails.
        scores = np.einsum("ij,j->i", self.matrix[:size], query / norm if norm else query)
        if lang is not None or tags:
            keep = np.ones(size, dtype=bool)
            if lang is not None:
                keep &= self.lang[:size] == self.lang_codes.get(lang, -1)
            for tag in tags:
                rows = self.tag_rows.get(tag)
                keep &= rows[:size] if rows is not None else False
            scores = np.where(keep, scores, -np.inf)
        n = min(n, size)
        best = np.argpartition(-scores, n - 1)[:n]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [self.pks[i] for i in best if np.isfinite(scores[i])]
