"""What Parley may ask of a document index: chunks in, ranked hits out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

MAX_QUERY_CHARS = 256
"""Only this many characters of a query are searched lexically: a bound on the work an
untrusted query can cause (and, on Elasticsearch, on the number of clauses it expands to)."""


@dataclass(frozen=True)
class Chunk:
    id: str                 # stable chunk id chosen by the caller (e.g. "faq-returns#0")
    doc_id: str             # the document it belongs to
    title: str
    text: str
    lang: str               # "en" | "zh"
    source: str = ""        # file path or URL
    tags: tuple[str, ...] = ()
    content_hash: str = ""  # caller-computed hash of text+title, used for incremental re-import
    vector: tuple[float, ...] | None = None   # dense embedding (one fixed dimension per index)


@dataclass(frozen=True)
class Hit:
    chunk: Chunk            # as stored, except ``vector`` (None: hits do not carry embeddings)
    score: float            # fused score, higher is better
    highlight: str          # a short plain-text snippet around the matched terms, wrapped in «»


class DocumentIndex(Protocol):
    """Chunks searched by BM25 (title weighted ×2) and, when a query vector is given, by
    cosine kNN; the two rankings are fused with reciprocal rank fusion (``fusion.RRF_K``).

    ``lang`` keeps chunks of that language; ``tags`` keeps chunks carrying every given tag.
    Query text is untrusted: it is never turned into query syntax, and any string (empty,
    quotes, operators, 10,000 characters) returns a list.
    """

    async def upsert(self, chunks: Sequence[Chunk]) -> None: ...          # insert or replace by id

    async def delete(self, chunk_ids: Sequence[str]) -> int: ...         # how many existed

    async def delete_document(self, doc_id: str) -> int: ...             # how many existed

    async def get(self, chunk_id: str) -> Chunk | None: ...

    async def hashes(self, doc_id: str) -> dict[str, str]: ...           # chunk id -> content_hash

    async def search(self, query: str, *, vector: Sequence[float] | None = None, k: int = 5,
                     lang: str | None = None, tags: Sequence[str] = ()) -> list[Hit]: ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...

