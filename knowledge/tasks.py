"""The knowledge base's background tasks: each is one call into a knowledge service.

The workers load this module by name (``Settings.task_modules``) and run every body through
their shared base (time limit, retries, dead letters, version gating). Payloads are JSON
objects (they travel through SQLite, Redis or Kafka), parsed by ``knowledge.payloads``.
Every body is idempotent, so running it twice (a redelivery after a crash) leaves the same
state as once: chunk ids are content-addressed, graph writes are upserts by key, deletes of
what is gone are no-ops.

    index_document   {"doc_id", "title", "lang", "tags": [...], "text": "<markdown>",
                      "source": "editor|import|kafka", "version": int}
    delete_document  {"doc_id", "version"?}
    upsert_entity    {"label", "key", "props": {...},
                      "edges": [{"rel", "dst_label", "dst_key", "props"?}],
                      "replace_edges"?: bool (the listed edges are all the outgoing ones)}
    delete_entity    {"label", "key"}
    reindex_all      {}

The E5 embedder is the worker's shared ``EMBEDDER`` resource: one model per worker, or the
one its process provides (the API hands its own to the embedded queue).
"""

from __future__ import annotations

from core.config import get_settings
from knowledge import factory
from knowledge.articles.entities import apply_upsert
from knowledge.documents.errors import ChunksNotWritten
from knowledge.embeddings import Embedder
from knowledge.graph.errors import InvalidGraphName, InvalidGraphValue
from knowledge.ingest import ImportReport, ParseError, import_documents
from knowledge.payloads import (
    doc_id_from_payload,
    document_from_payload,
    entity_from_payload,
    entity_key_from_payload,
)
from knowledge.sync import sync_all
from workers.context import Payload, Resource, TaskContext
from workers.registry import task

EMBEDDER: Resource[Embedder] = Resource("knowledge.embedder",
                                         lambda: factory.embedder(get_settings()))


@task("index_document", timeout_s=300, versioned="doc_id",
      permanent=(ParseError, ChunksNotWritten))
async def index_document(payload: Payload, ctx: TaskContext) -> None:
    document = document_from_payload(payload)
    index = factory.document_index(ctx.settings)
    embedder = ctx.resources.get(EMBEDDER)
    try:
        # Searchable once written; its sentences' vectors follow (answers read them).
        await import_documents([document], index=index, embedder=embedder,
                               report=ImportReport(),
                               sentences=factory.sentence_vectors(ctx.settings, embedder))
    finally:
        await index.close()


@task("delete_document", timeout_s=60, versioned="doc_id")
async def delete_document(payload: Payload, ctx: TaskContext) -> None:
    index = factory.document_index(ctx.settings)
    try:
        await index.delete_document(doc_id_from_payload(payload))
    finally:
        await index.close()


@task("upsert_entity", timeout_s=60, permanent=(InvalidGraphName, InvalidGraphValue))
async def upsert_entity(payload: Payload, ctx: TaskContext) -> None:
    """The node (props replaced), its listed outgoing edges and, with ``replace_edges``, no
    other outgoing ones: what the entity editor saves (``knowledge.articles.entities``).

    An edge to a node that does not exist yet fails with ``MissingEndpoint`` and is retried:
    the other node's change may still be on its way.
    """
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
        await graph.delete_node(*entity_key_from_payload(payload))
    finally:
        await graph.close()


@task("reindex_all", timeout_s=3600)
async def reindex_all(payload: Payload, ctx: TaskContext) -> None:
    await sync_all(ctx.settings, embedder=ctx.resources.get(EMBEDDER))
