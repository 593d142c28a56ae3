"""Dependencies of the editor API; tests swap them with ``app.dependency_overrides``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends

from core.deps import SettingsDep
from knowledge import factory
from knowledge.answer import Answerer
from knowledge.graph.protocol import GraphStore


async def get_graph(settings: SettingsDep) -> AsyncIterator[GraphStore]:
    graph = factory.graph_store(settings)
    try:
        yield graph
    finally:
        await graph.close()


async def get_answerer(settings: SettingsDep) -> AsyncIterator[Answerer]:
    answerer = factory.answerer(settings)
    try:
        yield answerer
    finally:
        await answerer.close()


GraphDep = Annotated[GraphStore, Depends(get_graph)]
AnswererDep = Annotated[Answerer, Depends(get_answerer)]
