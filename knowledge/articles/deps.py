"""Dependencies of the editor API; tests swap them with ``app.dependency_overrides``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import HTTPConnection

from core.deps import SettingsDep
from knowledge import factory
from knowledge.articles.flows import TaskQueue, task_queue
from knowledge.documents.protocol import DocumentIndex
from knowledge.embeddings import Embedder
from knowledge.graph.protocol import GraphStore


def get_task_queue(request: HTTPConnection, settings: SettingsDep) -> TaskQueue | None:
    """The workers' queue (looked up once per app); ``None`` until ``workers.queue`` exists."""
    state = request.app.state
    if not hasattr(state, "task_queue"):
        state.task_queue = task_queue(settings)
    return state.task_queue


def get_index(request: HTTPConnection) -> DocumentIndex | None:
    return getattr(request.app.state, "document_index", None)


def get_embedder(request: HTTPConnection) -> Embedder | None:
    return getattr(request.app.state, "embedder", None)


async def get_graph(settings: SettingsDep) -> AsyncIterator[GraphStore]:
    graph = factory.graph_store(settings)
    try:
        yield graph
    finally:
        await graph.close()


async def get_answerer(settings: SettingsDep) -> AsyncIterator[Any]:
    answerer = factory.answerer(settings)
    try:
        yield answerer
    finally:
        await answerer.index.close()
        if answerer.graph is not None:
            await answerer.graph.close()


QueueDep = Annotated[TaskQueue | None, Depends(get_task_queue)]
IndexDep = Annotated[DocumentIndex | None, Depends(get_index)]
EmbedderDep = Annotated[Embedder | None, Depends(get_embedder)]
GraphDep = Annotated[GraphStore, Depends(get_graph)]
AnswererDep = Annotated[Any, Depends(get_answerer)]
