"""The graph contract against a Bolt server: ArcadeDB's Bolt plugin standing in for Neo4j.

Each test gets its own database on one server started for the session (tests/arcadedb.py).
What this does not prove: Neo4j's own query planner, clustering and routing, and the
fulltext/vector index DDL that ArcadeDB refuses (the store does not use them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from knowledge.graph.errors import GraphUnavailable
from knowledge.graph.neo4j import Neo4jGraphStore
from knowledge.graph.protocol import Node
from tests.arcadedb import ArcadeDB, arcadedb  # noqa: F401  (session fixture)
from tests.contract.graph_store import GraphStoreContract
from tests.stack import free_port

pytestmark = pytest.mark.integration


async def open_store(server: ArcadeDB) -> Neo4jGraphStore:
    database = await asyncio.to_thread(server.create_database)
    return Neo4jGraphStore(server.bolt_url, user=server.user, password=server.password,
                           database=database)


@pytest.fixture
async def graph(arcadedb: ArcadeDB) -> AsyncIterator[Neo4jGraphStore]:  # noqa: F811
    store = await open_store(arcadedb)
    yield store
    await store.close()
    await asyncio.to_thread(arcadedb.drop_database, store.database)


class TestNeo4jGraphStore(GraphStoreContract):
    async def test_each_store_sees_only_its_database(
            self, graph: Neo4jGraphStore, arcadedb: ArcadeDB) -> None:  # noqa: F811
        other = await open_store(arcadedb)
        try:
            await graph.upsert_nodes([Node("Product", "A", {"v": 1})])
            await other.upsert_nodes([Node("Product", "A", {"v": 2}), Node("Product", "B")])
            for _ in range(3):  # pooled connections must not drift between databases
                assert await graph.get("Product", "A") == Node("Product", "A", {"v": 1})
                assert await graph.count() == 1
                assert await other.count() == 2
        finally:
            await other.close()
            await asyncio.to_thread(arcadedb.drop_database, other.database)

    async def test_concurrent_upserts_and_reads(self, graph: Neo4jGraphStore) -> None:
        nodes = [Node("Product", f"P{i:03}", {"i": i}) for i in range(50)]
        await asyncio.gather(*(graph.upsert_nodes([node]) for node in nodes))
        got = await asyncio.gather(*(graph.get("Product", node.key) for node in nodes))
        assert got == nodes
        assert await graph.count("Product") == 50


async def test_an_unreachable_server_is_graph_unavailable() -> None:
    store = Neo4jGraphStore(f"bolt://127.0.0.1:{free_port()}", user="neo4j", password="x",
                            timeout=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(GraphUnavailable):
            await store.count()
        with pytest.raises(GraphUnavailable):
            await store.upsert_nodes([Node("Product", "A")])
    finally:
        await store.close()
    assert time.monotonic() - started < 10


async def test_a_wrong_password_is_graph_unavailable(arcadedb: ArcadeDB) -> None:  # noqa: F811
    store = Neo4jGraphStore(arcadedb.bolt_url, user="root", password="wrong-password",
                            database="nope", timeout=2.0)
    try:
        with pytest.raises(GraphUnavailable):
            await store.count()
    finally:
        await store.close()
