"""The document index on Elasticsearch 9 (the only module that imports ``elasticsearch``).

One index, created with explicit mappings when missing: ``title`` and ``text`` analysed in
English with a Chinese subfield (``.zh``, the ``smartcn`` plugin in production), keyword
``id``/``doc_id``/``lang``/``tags``/``content_hash``, and ``vector`` as an indexed cosine
``dense_vector``. A search is a ``multi_match`` (best fields, titles ×2) and, given a query
vector, a separate ``knn`` search; the two rankings are fused by reciprocal rank fusion here,
not by the licensed ``rrf`` retriever. The query text only ever travels as a value.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Literal

from elastic_transport import HttpxAsyncHttpNode
from elasticsearch import (
    ApiError,
    AsyncElasticsearch,
    NotFoundError,
    TransportError,
)
from elasticsearch.helpers import async_streaming_bulk

from knowledge.documents.errors import (
    ChunksNotWritten,
    DocumentIndexError,
    DocumentIndexUnavailable,
)
from knowledge.documents.fusion import VECTOR_WEIGHT, fuse
from knowledge.documents.protocol import MAX_QUERY_CHARS, Chunk, Hit
from knowledge.documents.snippet import WIDTH, snippet

logger = logging.getLogger(__name__)

UNAVAILABLE_STATUS = frozenset({429, 502, 503, 504})
SEARCH_FIELDS = ["title^2", "text", "title.zh^2", "text.zh"]
PAGE = 1_000
MAX_WINDOW = 10_000  # index.max_result_window and the kNN num_candidates limit


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except ApiError as exc:
        status = exc.meta.status
        error = DocumentIndexUnavailable if status in UNAVAILABLE_STATUS else DocumentIndexError
        raise error(f"Elasticsearch {action}: {status} {exc.message}") from exc
    except TransportError as exc:  # connection refused, timeout, TLS
        raise DocumentIndexUnavailable(f"Elasticsearch {action}: {exc}") from exc


def _chunk(source: dict[str, Any], chunk_id: str) -> Chunk:
    vector = source.get("vector")
    return Chunk(id=chunk_id, doc_id=source["doc_id"], title=source["title"],
                 text=source["text"], lang=source["lang"], source=source.get("source", ""),
                 tags=tuple(source.get("tags") or ()),
                 content_hash=source.get("content_hash", ""),
                 vector=tuple(float(x) for x in vector) if vector is not None else None)


def _body(chunk: Chunk) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": chunk.id, "doc_id": chunk.doc_id, "title": chunk.title, "text": chunk.text,
        "lang": chunk.lang, "source": chunk.source, "tags": list(chunk.tags),
        "content_hash": chunk.content_hash}
    if chunk.vector is not None:
        body["vector"] = [float(x) for x in chunk.vector]
    return body


def _reason(item: dict[str, Any]) -> str:
    error = item.get("error")
    if isinstance(error, dict):
        return f"{error.get('type')}: {error.get('reason')}"
    return str(error or item.get("result") or item.get("status"))


class ElasticsearchDocumentIndex:
    """``DocumentIndex`` on Elasticsearch.

    ``vectors=False`` leaves ``dense_vector`` out of the mapping (vectors stay in ``_source``
    only and ``search`` ignores a query vector), for servers without it. ``refresh`` is
    passed to every write: ``"wait_for"`` makes a write visible to the next search.
    """

    def __init__(self, url: str, index: str = "parley-chunks", *,
                 chinese_analyzer: str = "smartcn", client: AsyncElasticsearch | None = None,
                 dims: int | None = None, vectors: bool = True,
                 refresh: bool | Literal["wait_for"] = "wait_for",
                 request_timeout: float = 10.0) -> None:
        self.index = index
        self.chinese_analyzer = chinese_analyzer
        self.dims = dims
        self.vectors = vectors
        self.refresh = refresh
        self._owns_client = client is None
        self._client = client or AsyncElasticsearch(
            url, node_class=HttpxAsyncHttpNode, request_timeout=request_timeout, max_retries=2,
            retry_on_timeout=True)
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._get_params: dict[str, Any] = {}

    # -- the index --------------------------------------------------------------------------

    def mappings(self, dims: int | None) -> dict[str, Any]:
        def text() -> dict[str, Any]:
            return {"type": "text", "analyzer": "english",
                    "fields": {"zh": {"type": "text", "analyzer": self.chinese_analyzer}}}

        keyword = {"type": "keyword"}
        properties: dict[str, Any] = {
            "id": keyword, "doc_id": keyword, "title": text(), "text": text(),
            "lang": keyword, "tags": keyword, "content_hash": keyword,
            "source": {"type": "keyword", "index": False, "doc_values": False}}
        if self.vectors:  # without dims, Elasticsearch takes them from the first vector
            properties["vector"] = {"type": "dense_vector", "index": True,
                                    "similarity": "cosine", **({"dims": dims} if dims else {})}
        # Unmapped fields (the vector when vectors=False) are kept in _source, not indexed.
        return {"dynamic": False, "properties": properties}

    async def _ensure(self, dims: int | None = None) -> None:
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            with _translated("create index"):
                if self.vectors:
                    await self._detect_vector_exclusion()
                if not (await self._client.indices.exists(index=self.index)).body:
                    try:
                        await self._client.indices.create(
                            index=self.index, mappings=self.mappings(self.dims or dims))
                        logger.info("created Elasticsearch index %s", self.index)
                    except ApiError as exc:
                        if exc.message != "resource_already_exists_exception":
                            raise
            self._ready = True

    async def _detect_vector_exclusion(self) -> None:
        # Elasticsearch 9.2+ leaves dense vectors out of _source unless asked for them; older
        # servers reject the parameter.
        version = (await self._client.info())["version"]
        number = tuple(int(part) for part in version["number"].split(".")[:2] if part.isdigit())
        if version.get("distribution") is None and number >= (9, 2):
            self._get_params = {"source_exclude_vectors": False}

    # -- writes -----------------------------------------------------------------------------

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        if not chunks:
            return
        await self._ensure(next((len(c.vector) for c in chunks if c.vector), None))
        actions = [{"_op_type": "index", "_index": self.index, "_id": chunk.id,
                    "_source": _body(chunk)} for chunk in chunks]
        failed: dict[str, str] = {}
        with _translated("bulk index"):
            async for ok, result in async_streaming_bulk(
                    self._client, actions, chunk_size=500, max_retries=2,
                    raise_on_error=False, refresh=self.refresh):
                item = result["index"]
                if not ok:
                    failed[item["_id"]] = _reason(item)
        if failed:
            raise ChunksNotWritten(failed)

    async def delete(self, chunk_ids: Sequence[str]) -> int:
        if not chunk_ids:
            return 0
        await self._ensure()
        actions = [{"_op_type": "delete", "_index": self.index, "_id": chunk_id}
                   for chunk_id in dict.fromkeys(chunk_ids)]
        deleted, failed = 0, {}
        with _translated("bulk delete"):
            async for ok, result in async_streaming_bulk(
                    self._client, actions, chunk_size=500, max_retries=2,
                    raise_on_error=False, refresh=self.refresh):
                item = result["delete"]
                if ok:
                    deleted += item.get("result") == "deleted"
                elif item.get("status") != 404:
                    failed[item["_id"]] = _reason(item)
        if failed:
            raise DocumentIndexError(f"{len(failed)} chunk(s) not deleted", details=failed)
        return deleted

    async def delete_document(self, doc_id: str) -> int:
        await self._ensure()
        with _translated("delete by query"):
            response = await self._client.delete_by_query(
                index=self.index, query={"term": {"doc_id": doc_id}}, conflicts="proceed",
                refresh=bool(self.refresh))
        return int(response["deleted"])

    # -- reads ------------------------------------------------------------------------------

    async def get(self, chunk_id: str) -> Chunk | None:
        await self._ensure()
        with _translated("get"):
            try:
                response = await self._client.get(index=self.index, id=chunk_id,
                                                  **self._get_params)
            except NotFoundError:
                return None
        return _chunk(response["_source"], response["_id"])

    async def hashes(self, doc_id: str) -> dict[str, str]:
        await self._ensure()
        hashes: dict[str, str] = {}
        after: list[Any] | None = None
        with _translated("search"):
            while True:
                response = await self._client.search(
                    index=self.index, query={"term": {"doc_id": doc_id}}, size=PAGE,
                    sort=[{"id": "asc"}], source_includes=["content_hash"],
                    search_after=after)
                hits = response["hits"]["hits"]
                hashes.update((hit["_id"], hit["_source"].get("content_hash", ""))
                              for hit in hits)
                if len(hits) < PAGE:
                    return hashes
                after = hits[-1]["sort"]

    async def count(self) -> int:
        await self._ensure()
        with _translated("count"):
            return int((await self._client.count(index=self.index))["count"])

    async def search(self, query: str, *, vector: Sequence[float] | None = None, k: int = 5,
                     lang: str | None = None, tags: Sequence[str] = ()) -> list[Hit]:
        if k <= 0:
            return []
        await self._ensure()
        window = min(max(4 * k, 20), MAX_WINDOW)
        filters = ([{"term": {"lang": lang}}] if lang is not None else []) + [
            {"term": {"tags": tag}} for tag in dict.fromkeys(tags)]
        text = query[:MAX_QUERY_CHARS]
        searches = []
        if text.strip():
            searches.append(self._client.search(
                index=self.index, size=window, source_excludes=["vector"],
                query={"bool": {"must": [{"multi_match": {
                    "query": text, "type": "best_fields", "fields": SEARCH_FIELDS}}],
                    "filter": filters}},
                highlight={"pre_tags": ["«"], "post_tags": ["»"], "fields": {
                    field: {"fragment_size": WIDTH, "number_of_fragments": 1}
                    for field in ("text", "text.zh")}}))
        if vector is not None and self.vectors:
            knn: dict[str, Any] = {
                "field": "vector", "query_vector": [float(x) for x in vector], "k": window,
                "num_candidates": min(max(100, 2 * window), MAX_WINDOW)}
            if filters:
                knn["filter"] = filters
            searches.append(self._client.search(index=self.index, knn=knn, size=window,
                                                source_excludes=["vector"]))
        with _translated("search"):
            responses = await asyncio.gather(*searches)
        found: dict[str, dict[str, Any]] = {}
        rankings = []
        for response in responses:
            hits = response["hits"]["hits"]
            rankings.append([hit["_id"] for hit in hits])
            for hit in hits:
                found.setdefault(hit["_id"], hit)
        weights = [1.0, VECTOR_WEIGHT][:len(rankings)]
        return [self._hit(found[chunk_id], score)
                for chunk_id, score in fuse(rankings, k, weights)]

    def _hit(self, hit: dict[str, Any], score: float) -> Hit:
        chunk = replace(_chunk(hit["_source"], hit["_id"]), vector=None)
        fields = hit.get("highlight", {})
        order = ("text.zh", "text") if chunk.lang == "zh" else ("text", "text.zh")
        fragments = [fields[name][0] for name in order if fields.get(name)]
        return Hit(chunk=chunk, score=score,
                   highlight=fragments[0] if fragments else snippet(chunk.text, ()))

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()
