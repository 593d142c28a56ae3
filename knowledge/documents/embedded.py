"""The embedded document index: one SQLite file, no server.

``chunks`` holds every field (tags as JSON, the vector as a float32 blob). ``chunks_fts`` is an
FTS5 table over the title and text as ``tokenize.analyze`` tokens, space-separated, ranked by
``bm25()`` with the title weighted ×2; a third, unweighted column holds the language and tags
as opaque tokens, so filters are part of the full-text match instead of a join. Query terms
reach ``MATCH`` only as quoted strings. Vectors are searched exactly (cosine) in memory
(``vectors.Vectors``), loaded on the first vector search and kept in step with every write.
SQLite work runs in a worker thread, one call at a time.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np

from knowledge.documents.errors import (
    ChunksNotWritten,
    DocumentIndexError,
    DocumentIndexUnavailable,
)
from knowledge.documents.fusion import VECTOR_WEIGHT, fuse
from knowledge.documents.protocol import MAX_QUERY_CHARS, Chunk, Hit
from knowledge.documents.snippet import snippet
from knowledge.documents.tokenize import ANALYZER_VERSION, analyze, query_terms
from knowledge.documents.vectors import Vectors

T = TypeVar("T")
BATCH = 500
TITLE_WEIGHT = 2.0
BM25_BUDGET = 4_000
"""FTS5's bm25() scores every row that matches, so a query is kept to about this many rows:
its most common terms are left out when rarer ones exist (they carry little BM25 weight
anyway); when every term is that common, only the newest chunks holding all of them are
ranked. A query whose terms are in fewer chunks than this is plain BM25 over all its terms."""

INDEX_VERSION = f"2.{ANALYZER_VERSION}"
"""The layout of ``chunks_fts`` and the analyzer that filled it: rebuilt when either changes."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    lang TEXT NOT NULL,
    source TEXT NOT NULL,
    tags TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    vector BLOB
);
CREATE INDEX IF NOT EXISTS chunks_doc_id ON chunks (doc_id);
"""
# The text is already analysed: the tokenizer only splits it at the spaces again.
FTS_SCHEMA = """
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    title, text, filters, tokenize="unicode61 remove_diacritics 0 tokenchars '-_./'");
"""
COLUMNS = "pk, id, doc_id, title, text, lang, source, tags, content_hash"
_FTS_INSERT = "INSERT INTO chunks_fts (rowid, title, text, filters) VALUES (?, ?, ?, ?)"


def _lang_token(lang: str) -> str:
    return "l" + lang.encode().hex()


def _tag_token(tag: str) -> str:
    return "t" + tag.encode().hex()


def _fts_row(pk: int, title: str, text: str, lang: str, tags: Iterable[str]) -> tuple:
    filters = " ".join([_lang_token(lang), *map(_tag_token, tags)])
    return pk, " ".join(analyze(title)), " ".join(analyze(text)), filters


def _quoted(terms: Iterable[str], operator: str = " OR ") -> str:
    # Every term becomes an FTS5 string ("..." with " doubled): never an operator, column
    # filter, prefix or NEAR group, whatever the customer typed.
    return operator.join('"' + term.replace('"', '""') + '"' for term in terms)


def _blob(vector: Sequence[float] | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype="<f4").tobytes()


def _chunk(row: Sequence, vector: bytes | None = None) -> Chunk:
    _, cid, doc_id, title, text, lang, source, tags, content_hash = row[:9]
    return Chunk(id=cid, doc_id=doc_id, title=title, text=text, lang=lang, source=source,
                 tags=tuple(json.loads(tags)), content_hash=content_hash,
                 vector=None if vector is None
                 else tuple(float(x) for x in np.frombuffer(vector, dtype="<f4")))


class SQLiteDocumentIndex:
    """The default ``DocumentIndex``: persistent, in-process, bilingual."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._vectors: Vectors | None = None
        self._dim: int | None = None
        self._frequency: dict[str, int] = {}  # document frequency per term, until a write
        self._data_version = -1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False,
                                         isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            self._check_index_version()
        except (OSError, sqlite3.Error) as exc:
            raise DocumentIndexUnavailable(
                f"cannot open the document index {self.path}: {exc}") from exc

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.to_thread(work, *args)
        except sqlite3.OperationalError as exc:
            raise DocumentIndexUnavailable(f"document index: {exc}") from exc
        except sqlite3.Error as exc:
            raise DocumentIndexError(f"document index: {exc}") from exc

    @contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
        self._conn.execute(begin)
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _check_index_version(self) -> None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'index'").fetchone()
        if row and row[0] == INDEX_VERSION:
            return
        # New, or built by another layout or analyzer: index the stored chunks again.
        with self._lock, self._transaction():
            self._conn.execute("DROP TABLE IF EXISTS chunks_fts")
            self._conn.execute(FTS_SCHEMA)
            rows = self._conn.execute("SELECT pk, title, text, lang, tags FROM chunks")
            self._conn.executemany(_FTS_INSERT, [
                _fts_row(pk, title, text, lang, json.loads(tags))
                for pk, title, text, lang, tags in rows.fetchall()])
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('index', ?)",
                               (INDEX_VERSION,))

    def _catch_up(self) -> None:
        """Forget what is cached if another connection (an import running in another process)
        has committed since we last looked; our own writes keep the caches in step."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            self._vectors, self._dim = None, None
            self._frequency.clear()

    def _stored_dim(self) -> int | None:
        if self._dim is None:
            row = self._conn.execute(
                "SELECT length(vector) FROM chunks WHERE vector IS NOT NULL LIMIT 1").fetchone()
            self._dim = row[0] // 4 if row else None
        return self._dim

    def _load_vectors(self) -> Vectors | None:
        dim = self._stored_dim() if self._vectors is None else None
        if dim is not None:
            self._vectors = Vectors.load(dim, self._conn.execute(
                "SELECT pk, lang, tags, vector FROM chunks WHERE vector IS NOT NULL").fetchall())
        return self._vectors

    # -- writes -----------------------------------------------------------------------------

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        if chunks:  # the last of several chunks with one id wins
            await self._run(self._upsert, list({c.id: c for c in chunks}.values()))

    def _upsert(self, chunks: list[Chunk]) -> None:
        # Tokenising (jieba) is the slow part: done before taking the lock.
        fts = [_fts_row(0, c.title, c.text, c.lang, c.tags) for c in chunks]
        with self._lock:
            self._catch_up()
            expected = self._stored_dim()
            if expected is None:
                expected = next((len(c.vector) for c in chunks if c.vector is not None), None)
            failed = {c.id: f"vector has {len(c.vector)} dimensions, the index holds {expected}"
                      for c in chunks if c.vector is not None and len(c.vector) != expected}
            failed.update({c.id: "empty vector" for c in chunks if c.vector == ()})
            if failed:
                raise ChunksNotWritten(failed)
            pks: list[int] = []
            with self._transaction():
                for start in range(0, len(chunks), BATCH):
                    pks += self._write_batch(chunks[start:start + BATCH],
                                             fts[start:start + BATCH])
            self._dim = expected
            self._frequency.clear()
            if self._vectors is not None:
                for pk, chunk in zip(pks, chunks, strict=True):
                    if chunk.vector is None:
                        self._vectors.remove(pk)
                    else:
                        self._vectors.put(pk, np.asarray(chunk.vector, dtype=np.float32),
                                          chunk.lang, chunk.tags)

    def _write_batch(self, chunks: list[Chunk], fts: list[tuple]) -> list[int]:
        ids = [c.id for c in chunks]
        marks = ",".join("?" * len(ids))
        replaced = self._conn.execute(f"SELECT pk FROM chunks WHERE id IN ({marks})", ids)
        self._conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", replaced.fetchall())
        self._conn.executemany(
            """INSERT INTO chunks (id, doc_id, title, text, lang, source, tags, content_hash,
                                   vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (id) DO UPDATE SET doc_id = excluded.doc_id,
                   title = excluded.title, text = excluded.text, lang = excluded.lang,
                   source = excluded.source, tags = excluded.tags,
                   content_hash = excluded.content_hash, vector = excluded.vector""",
            [(c.id, c.doc_id, c.title, c.text, c.lang, c.source,
              json.dumps(list(c.tags), ensure_ascii=False), c.content_hash, _blob(c.vector))
             for c in chunks])
        pk_of = dict(self._conn.execute(f"SELECT id, pk FROM chunks WHERE id IN ({marks})", ids))
        pks = [pk_of[chunk_id] for chunk_id in ids]
        self._conn.executemany(_FTS_INSERT, [(pk, *row[1:]) for pk, row in zip(pks, fts,
                                                                                strict=True)])
        return pks

    async def delete(self, chunk_ids: Sequence[str]) -> int:
        return await self._run(self._delete, "id", list(dict.fromkeys(chunk_ids)))

    async def delete_document(self, doc_id: str) -> int:
        return await self._run(self._delete, "doc_id", [doc_id])

    def _delete(self, column: str, values: list[str]) -> int:
        pks: list[int] = []
        with self._lock:
            self._catch_up()
            with self._transaction():
                for start in range(0, len(values), BATCH):
                    part = values[start:start + BATCH]
                    marks = ",".join("?" * len(part))
                    rows = self._conn.execute(  # column is one of two literals above
                        f"DELETE FROM chunks WHERE {column} IN ({marks}) RETURNING pk",
                        part).fetchall()
                    self._conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", rows)
                    pks += [pk for (pk,) in rows]
            self._frequency.clear()
            if self._vectors is not None:
                for pk in pks:
                    self._vectors.remove(pk)
        return len(pks)

    # -- reads ------------------------------------------------------------------------------

    async def get(self, chunk_id: str) -> Chunk | None:
        return await self._run(self._get, chunk_id)

    def _get(self, chunk_id: str) -> Chunk | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {COLUMNS}, vector FROM chunks WHERE id = ?",
                                     (chunk_id,)).fetchone()
        return _chunk(row, row[9]) if row else None

    async def hashes(self, doc_id: str) -> dict[str, str]:
        return await self._run(self._hashes, doc_id)

    def _hashes(self, doc_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._conn.execute(
                "SELECT id, content_hash FROM chunks WHERE doc_id = ?", (doc_id,)))

    async def count(self) -> int:
        return await self._run(self._count)

    def _count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM chunks").fetchone()[0]

    async def search(self, query: str, *, vector: Sequence[float] | None = None, k: int = 5,
                     lang: str | None = None, tags: Sequence[str] = ()) -> list[Hit]:
        if k <= 0:
            return []
        return await self._run(self._search, query, vector, k, lang, frozenset(tags))

    def _search(self, query: str, vector: Sequence[float] | None, k: int, lang: str | None,
                tags: frozenset[str]) -> list[Hit]:
        terms = query_terms(query[:MAX_QUERY_CHARS])
        window = max(4 * k, 20)
        with self._lock, self._transaction("BEGIN DEFERRED"):  # one snapshot for all reads
            self._catch_up()
            lexical = self._bm25(terms, window, lang, tags) if terms else []
            semantic = self._knn(vector, window, lang, tags) if vector is not None else []
            fused = fuse([lexical, semantic], k, [1.0, VECTOR_WEIGHT])
            if not fused:
                return []
            marks = ",".join("?" * len(fused))
            rows = {row[0]: row for row in self._conn.execute(
                f"SELECT {COLUMNS} FROM chunks WHERE pk IN ({marks})", [pk for pk, _ in fused])}
        hits = []
        for pk, score in fused:
            if pk in rows:  # else deleted by another process after our vectors were loaded
                chunk = _chunk(rows[pk])
                hits.append(Hit(chunk=chunk, score=score,
                                highlight=snippet(chunk.text, terms) or chunk.title))
        return hits

    def _bm25(self, terms: Sequence[str], window: int, lang: str | None,
              tags: frozenset[str]) -> list[int]:
        frequency = {term: self._document_frequency(term) for term in terms}
        present = sorted((t for t in terms if frequency[t]), key=frequency.__getitem__)
        if not present:
            return []
        if frequency[present[0]] > BM25_BUDGET:
            # Every term is common: the newest chunks holding all of them, else the rarest.
            return (self._ranked(present, " AND ", window, lang, tags, newest=True)
                    or self._ranked(present[:1], " OR ", window, lang, tags, newest=True))
        chosen, total = [], 0
        for term in present:  # rarest first, as many as the budget allows
            if total + frequency[term] > BM25_BUDGET:
                break
            chosen.append(term)
            total += frequency[term]
        return self._ranked(chosen, " OR ", window, lang, tags)

    def _document_frequency(self, term: str) -> int:
        """How many chunks hold ``term`` in their title or text, counted up to the budget."""
        if term not in self._frequency:
            if len(self._frequency) > 100_000:
                self._frequency.clear()
            self._frequency[term] = self._conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?)",
                ("{title text} : " + _quoted([term]), BM25_BUDGET + 1)).fetchone()[0]
        return self._frequency[term]

    def _ranked(self, terms: Sequence[str], operator: str, window: int, lang: str | None,
                tags: frozenset[str], *, newest: bool = False) -> list[int]:
        expression = "{title text} : (" + _quoted(terms, operator) + ")"
        filters = ([_lang_token(lang)] if lang is not None else []) + [
            _tag_token(tag) for tag in sorted(tags)]
        if filters:
            expression += " AND filters : (" + _quoted(filters, " AND ") + ")"
        where, params = "chunks_fts MATCH ?", [expression]
        if newest:  # bm25() costs about one unit per matching row and term
            floor = self._conn.execute(
                "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rowid DESC "
                "LIMIT 1 OFFSET ?", (expression, BM25_BUDGET // len(terms))).fetchone()
            if floor:
                where += " AND rowid >= ?"
                params.append(floor[0])
        return [pk for (pk,) in self._conn.execute(
            f"SELECT rowid FROM chunks_fts WHERE {where} "
            f"ORDER BY bm25(chunks_fts, {TITLE_WEIGHT}, 1.0, 0.0), rowid LIMIT ?",
            [*params, window])]

    def _knn(self, vector: Sequence[float], window: int, lang: str | None,
             tags: frozenset[str]) -> list[int]:
        vectors = self._load_vectors()
        if vectors is None:
            return []
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (vectors.dim,):
            raise DocumentIndexError(
                f"query vector has {query.size} dimensions, the index holds {vectors.dim}")
        return vectors.nearest(query, window, lang, tags)

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            self._conn.close()
            self._vectors = None
