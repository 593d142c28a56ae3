"""Sentence vectors kept for every process and across restarts, keyed by what they are of.

An answer chooses among its sources' sentences by their meaning, and the injection detector
judges each sentence by its vector: both need every sentence's passage vector.
``embeddings.SentenceVectors`` keeps them in a process's memory; a ``VectorCache`` keeps them
for all processes and after a restart, so a question embeds only itself. The import fills it
(``knowledge.compose.prepare_sentences``); a sentence it has not seen is embedded once and
added.

Keys are content addresses (``key``: the embedder's name and the text): an edited sentence is
another key, so nothing is ever invalidated. Vectors are float32 bytes. Two implementations:

- ``SQLiteVectorCache``, the embedded default: one file under ``var_dir`` (WAL: readers in
  other processes do not wait for the writer);
- ``RedisVectorCache`` (``PARLEY_VECTOR_CACHE_URL=redis://…``): one string per vector, read with
  ``MGET``; each write sets an expiry (``ttl_s``), so sentences of deleted articles leave and
  the ones in use are written again when next missed.

A cache that fails is skipped (the vectors are computed), never the answer.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

BATCH = 500  # keys per SQLite query (its host-parameter limit is 32,766) and per MGET


def key(embedder_name: str, text: str) -> str:
    return hashlib.blake2b(f"{embedder_name}\n{text}".encode(), digest_size=16).hexdigest()


class VectorCache(Protocol):
    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The vectors stored under ``keys`` (those it has)."""
        ...

    def put(self, vectors: Mapping[str, np.ndarray]) -> None: ...

    def close(self) -> None: ...


def _decode(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


class SQLiteVectorCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors "
                         "(key TEXT PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID")
        self._lock = threading.Lock()

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), BATCH):
                part = list(keys[start:start + BATCH])
                rows = self._db.execute(
                    f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})",
                    part).fetchall()
                found.update((k, _decode(v)) for k, v in rows)
        return found

    def put(self, vectors: Mapping[str, np.ndarray]) -> None:
        rows = [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisVectorCache:
    def __init__(self, url: str, *, prefix: str = "parley", ttl_s: int = 90 * 86_400) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = f"{prefix}:sentence-vector:"
        self.ttl_s = ttl_s

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), BATCH):
            part = list(keys[start:start + BATCH])
            values = self._redis.mget([self._prefix + k for k in part])
            found.update((k, _decode(v)) for k, v in zip(part, values, strict=True)
                         if isinstance(v, bytes))
        return found

    def put(self, vectors: Mapping[str, np.ndarray]) -> None:
        items = list(vectors.items())
        for start in range(0, len(items), BATCH):
            with self._redis.pipeline(transaction=False) as pipe:
                for k, v in items[start:start + BATCH]:
                    pipe.set(self._prefix + k, np.asarray(v, dtype=np.float32).tobytes(),
                             ex=self.ttl_s)
                pipe.execute()

    def close(self) -> None:
        self._redis.close()
