"""The graph contract against the embedded SQLite store, plus what only a file store has."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from knowledge.graph.embedded import SQLiteGraphStore
from knowledge.graph.errors import GraphUnavailable
from knowledge.graph.protocol import Edge, Node
from tests.contract.graph_store import GraphStoreContract

pytestmark = pytest.mark.unit


@pytest.fixture
async def graph(tmp_path: Path) -> AsyncIterator[SQLiteGraphStore]:
    store = SQLiteGraphStore(tmp_path / "graph.db")
    yield store
    await store.close()


class TestSQLiteGraphStore(GraphStoreContract):
    async def test_persists_across_reopen(self, tmp_path: Path) -> None:
        path = tmp_path / "nested" / "graph.db"
        store = SQLiteGraphStore(path)
        await store.upsert_nodes([Node("Product", "A", {"name": {"en": "a", "zh": "甲"}}),
                                  Node("Order", "O1", {})])
        await store.upsert_edges([Edge(("Order", "O1"), "CONTAINS", ("Product", "A"),
                                       {"qty": 2})])
        await store.close()

        reopened = SQLiteGraphStore(path)
        try:
            assert await reopened.get("Product", "A") == Node(
                "Product", "A", {"name": {"en": "a", "zh": "甲"}})
            [(edge, node)] = await reopened.neighbours("Product", "A")
            assert edge.props == {"qty": 2} and node.key == "O1"
        finally:
            await reopened.close()

    async def test_a_closed_store_is_unavailable(self, graph: SQLiteGraphStore) -> None:
        await graph.close()
        with pytest.raises(GraphUnavailable):
            await graph.count()
        await graph.close()  # twice is fine

    async def test_an_unopenable_file_is_unavailable(self, tmp_path: Path) -> None:
        (tmp_path / "not-a-db").write_bytes(b"this is not a SQLite database file" * 100)
        with pytest.raises(GraphUnavailable):
            SQLiteGraphStore(tmp_path / "not-a-db")
