"""The task bodies: each is one call into a knowledge or NLU service.

Payloads are JSON objects (they travel through SQLite, Redis or Kafka). Every body is
idempotent, so running it twice (a redelivery after a crash) leaves the same state as once:
chunk ids are content-addressed, graph writes are upserts by key, deletes of what is gone are
no-ops, training on unchanged data reuses the model version.

    index_document   {"doc_id", "title", "lang", "tags": [...], "text": "<markdown>",
                      "source": "editor|import|kafka", "version": int}
    delete_document  {"doc_id", "version"?}
    upsert_entity    {"label", "key", "props": {...},
                      "edges": [{"rel", "dst_label", "dst_key", "props"?}],
                      "replace_edges"?: bool (the listed edges are all the outgoing ones)}
    delete_entity    {"label", "key"}
    reindex_all      {}
    retrain_nlu      {}
"""

from __future__ import annotations

import asyncio
from typing import Any

from knowledge import factory
from knowledge.documents.errors import ChunksNotWritten
from knowledge.graph.errors import InvalidGraphName, InvalidGraphValue
from knowledge.graph.protocol import Edge, Node
from knowledge.ingest import (
    Document,
    ImportReport,
    ParseError,
    import_documents,
    parse_markdown_text,
)
from nlu.errors import TrainingDataError
from workers.base import Payload, TaskContext, task
from workers.errors import InvalidPayload

MAX_TEXT_CHARS = 2_000_000
SOURCES = {"editor", "import", "kafka"}


def _string(payload: Payload, name: str, *, required: bool = True, default: str = "") -> str:
    value = payload.get(name)
    if value is None and not required:
        return default
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidPayload(f"{name!r} must be a non-empty string")
    return value


def document_from_payload(payload: Payload) -> Document:
    """The document an ``index_document`` payload describes, split into sections the way
    ``knowledge.ingest.parse_markdown`` splits a Markdown file (headings, lists, tables)."""
    doc_id, title = _string(payload, "doc_id"), _string(payload, "title")
    text = _string(payload, "text")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidPayload(f"'text' is longer than {MAX_TEXT_CHARS} characters")
    tags = payload.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidPayload("'tags' must be a list of strings")
    lang = _string(payload, "lang", required=False)
    source = _string(payload, "source", required=False, default="editor")
    if source not in SOURCES:
        raise InvalidPayload(f"'source' must be one of {sorted(SOURCES)}")
    try:
        # The leading newline keeps a body starting with "---" from being read as front matter.
        parsed = parse_markdown_text("\n" + text, source=source)
    except ParseError as exc:
        raise InvalidPayload(f"'text': {exc}") from None
    return Document(id=doc_id, title=title, lang=lang or parsed.lang, source=source,
                    tags=tuple(tags), sections=parsed.sections)


def entity_from_payload(payload: Payload) -> tuple[Node, list[Edge]]:
    label, key = _string(payload, "label"), _string(payload, "key")
    props, edges = payload.get("props") or {}, payload.get("edges") or []
    if not isinstance(props, dict):
        raise InvalidPayload("'props' must be an object")
    if not isinstance(edges, list) or not all(isinstance(e, dict) for e in edges):
        raise InvalidPayload("'edges' must be a list of objects")
    if not isinstance(payload.get("replace_edges", False), bool):
        raise InvalidPayload("'replace_edges' must be true or false")
    out = []
    for edge in edges:
        edge_props = edge.get("props") or {}
        if not isinstance(edge_props, dict):
            raise InvalidPayload("an edge's 'props' must be an object")
        out.append(Edge((label, key), _string(edge, "rel"),
                        (_string(edge, "dst_label"), _string(edge, "dst_key")), edge_props))
    return Node(label, key, props), out


@task("index_document", timeout_s=300, versioned="doc_id",
      permanent=(ParseError, ChunksNotWritten))
async def index_document(payload: Payload, ctx: TaskContext) -> None:
    document = document_from_payload(payload)
    index = factory.document_index(ctx.settings)
    try:
        await import_documents([document], index=index, embedder=ctx.get_embedder(),
                               report=ImportReport())
    finally:
        await index.close()


@task("delete_document", timeout_s=60, versioned="doc_id")
async def delete_document(payload: Payload, ctx: TaskContext) -> None:
    index = factory.document_index(ctx.settings)
    try:
        await index.delete_document(_string(payload, "doc_id"))
    finally:
        await index.close()


@task("upsert_entity", timeout_s=60, permanent=(InvalidGraphName, InvalidGraphValue))
async def upsert_entity(payload: Payload, ctx: TaskContext) -> None:
    """The node (props replaced), its listed outgoing edges and, with ``replace_edges``, no
    other outgoing ones: what the entity editor saves (``knowledge.articles.entities``).

    An edge to a node that does not exist yet fails with ``MissingEndpoint`` and is retried:
    the other node's change may still be on its way.
    """
    from knowledge.articles.entities import apply_upsert

    node, edges = entity_from_payload(payload)
    graph = factory.graph_store(ctx.settings)
    try:
        await apply_upsert(graph, {
            "label": node.label, "key": node.key, "props": dict(node.props),
            "edges": [{"rel": e.rel, "dst_label": e.dst[0], "dst_key": e.dst[1],
                       "props": dict(e.props)} for e in edges],
            "replace_edges": payload.get("replace_edges") is True})
    finally:
        await graph.close()


@task("delete_entity", timeout_s=60, permanent=(InvalidGraphName,))
async def delete_entity(payload: Payload, ctx: TaskContext) -> None:
    graph = factory.graph_store(ctx.settings)
    try:
        await graph.delete_node(_string(payload, "label"), _string(payload, "key"))
    finally:
        await graph.close()


@task("reindex_all", timeout_s=3600)
async def reindex_all(payload: Payload, ctx: TaskContext) -> None:
    from knowledge.sync import sync_all

    await sync_all(ctx.settings, embedder=ctx.get_embedder())


@task("retrain_nlu", timeout_s=3600, permanent=(TrainingDataError,))
async def retrain_nlu(payload: Payload, ctx: TaskContext) -> Any:
    from nlu.train import train_for_settings

    return await asyncio.to_thread(train_for_settings, ctx.settings)
