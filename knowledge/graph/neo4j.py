"""The graph store on a Neo4j server (or another Bolt server speaking Cypher, e.g. ArcadeDB).

The only module that imports the neo4j driver. Every query is parameterised; labels and
relationship types cannot be parameters in Cypher, so they are checked against
``values.LABEL``/``values.REL`` first and only then written into the query, in backticks.
Dict props (``{"en": ..., "zh": ...}``) are stored as canonical JSON strings, their names
listed in the node's ``_json`` property, and come back as dicts.

Every session names its database (a pooled connection would otherwise keep whichever
database it used last) and shares the driver's bookmark manager, so a read sees the
writes before it. Writes and reads run as managed transactions (retried on transient
errors); connection failures surface as ``GraphUnavailable``.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import neo4j
from neo4j import AsyncGraphDatabase, AsyncManagedTransaction
from neo4j.exceptions import (
    AuthError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from knowledge.graph.errors import GraphError, GraphUnavailable, MissingEndpoint
from knowledge.graph.facts import node_facts
from knowledge.graph.protocol import Direction, Edge, Fact, Node, NodeRef
from knowledge.graph.values import (
    check_depth,
    check_direction,
    check_label,
    check_limit,
    check_prop_name,
    check_ref,
    check_rel,
    clean_edge,
    clean_node,
    clean_value,
    dumps,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
BATCH = 1000
JSON_PROPS = "_json"

# One row per (node reached, depth, last edge of a path reaching it); the caller keeps the
# nearest. {pattern} is built from checked names and an int depth only.
WALK = """
MATCH p = (a:{label} {{key: $key}}){pattern}(b)
WHERE b <> a
WITH DISTINCT b, length(p) AS depth, last(relationships(p)) AS r
RETURN depth, type(r) AS rel, labels(startNode(r)) AS src_labels, startNode(r).key AS src_key,
       labels(endNode(r)) AS dst_labels, endNode(r).key AS dst_key, properties(r) AS edge_props,
       labels(b) AS labels, properties(b) AS props
"""

LINKS = """
MATCH (a:{label} {{key: $key}})-[r]-(b)
WHERE b <> a
RETURN type(r) AS rel, labels(startNode(r)) AS src_labels, startNode(r).key AS src_key,
       labels(endNode(r)) AS dst_labels, endNode(r).key AS dst_key, properties(r) AS edge_props,
       labels(b) AS labels, properties(b) AS props
"""


class Neo4jGraphStore:
    """A ``GraphStore`` on a Bolt server, through the neo4j async driver."""

    def __init__(self, url: str, *, user: str | None = None, password: str | None = None,
                 database: str = "neo4j", driver: neo4j.AsyncDriver | None = None,
                 timeout: float = 5.0) -> None:
        self.url = url
        self.database = database
        self._owns_driver = driver is None
        if driver is None:
            try:
                driver = AsyncGraphDatabase.driver(
                    url, auth=(user, password or "") if user else None,
                    connection_timeout=timeout, connection_acquisition_timeout=timeout,
                    max_transaction_retry_time=timeout)
            except (DriverError, ValueError) as exc:
                raise GraphError(f"invalid graph server settings: {exc}") from exc
        self._driver = driver
        self._keyed: set[str] = set()

    async def upsert_nodes(self, nodes: Sequence[Node]) -> None:
        latest = {node.ref: node for node in map(clean_node, nodes)}
        by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for node in latest.values():
            by_label[node.label].append({"key": node.key, "props": _encode(node.props)})
        if not by_label:
            return
        await self._ensure_keyed(by_label)

        async def work(tx: AsyncManagedTransaction) -> None:
            for label, rows in by_label.items():
                query = (f"UNWIND $rows AS row MERGE (n:`{label}` {{key: row.key}}) "
                         "SET n = row.props, n.key = row.key")
                for chunk in _chunks(rows):
                    await (await tx.run(query, rows=chunk)).consume()

        await self._execute(work, write=True)

    async def upsert_edges(self, edges: Sequence[Edge]) -> None:
        latest = {(edge.src, edge.rel, edge.dst): edge for edge in map(clean_edge, edges)}
        if not latest:
            return
        ends: dict[str, set[str]] = defaultdict(set)
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for edge in latest.values():
            ends[edge.src[0]].add(edge.src[1])
            ends[edge.dst[0]].add(edge.dst[1])
            groups[edge.src[0], edge.rel, edge.dst[0]].append(
                {"src": edge.src[1], "dst": edge.dst[1], "props": _encode(edge.props)})

        async def work(tx: AsyncManagedTransaction) -> None:
            for label, keys in sorted(ends.items()):
                wanted = sorted(keys)
                found: set[str] = set()
                for some in _chunks(wanted):
                    result = await tx.run(f"UNWIND $keys AS k MATCH (n:`{label}` {{key: k}}) "
                                          "RETURN n.key AS key", keys=some)
                    found.update([record["key"] async for record in result])
                missing = [key for key in wanted if key not in found]
                if missing:
                    raise MissingEndpoint(f"no node {label} {missing[0]!r}",
                                          details={"label": label, "key": missing[0]})
            for (src_label, rel, dst_label), rows in groups.items():
                query = (f"UNWIND $rows AS row MATCH (a:`{src_label}` {{key: row.src}}) "
                         f"MATCH (b:`{dst_label}` {{key: row.dst}}) "
                         f"MERGE (a)-[r:`{rel}`]->(b) SET r = row.props")
                for chunk in _chunks(rows):
                    await (await tx.run(query, rows=chunk)).consume()

        await self._execute(work, write=True)

    async def delete_node(self, label: str, key: str) -> bool:
        label, key = check_ref((label, key))

        async def work(tx: AsyncManagedTransaction) -> bool:
            result = await tx.run(f"MATCH (n:`{label}` {{key: $key}}) DETACH DELETE n",
                                  key=key)
            return (await result.consume()).counters.nodes_deleted > 0

        return await self._execute(work, write=True)

    async def delete_edge(self, src: NodeRef, rel: str, dst: NodeRef) -> bool:
        (src_label, src_key), rel, (dst_label, dst_key) = check_ref(src), check_rel(rel), \
            check_ref(dst)

        async def work(tx: AsyncManagedTransaction) -> bool:
            result = await tx.run(
                f"MATCH (a:`{src_label}` {{key: $src}})-[r:`{rel}`]->"
                f"(b:`{dst_label}` {{key: $dst}}) DELETE r", src=src_key, dst=dst_key)
            return (await result.consume()).counters.relationships_deleted > 0

        return await self._execute(work, write=True)

    async def get(self, label: str, key: str) -> Node | None:
        label, key = check_ref((label, key))

        async def work(tx: AsyncManagedTransaction) -> Node | None:
            result = await tx.run(f"MATCH (n:`{label}` {{key: $key}}) "
                                  "RETURN properties(n) AS props LIMIT 1", key=key)
            record = await result.single()
            return None if record is None else Node(label, key, _decode(record["props"]))

        return await self._execute(work)

    async def find(self, label: str, *, limit: int = 50, **equals: Any) -> list[Node]:
        check_label(label)
        where: list[str] = []
        params: dict[str, Any] = {"limit": check_limit(limit)}
        for i, (name, value) in enumerate(equals.items()):
            params[f"p{i}"] = check_prop_name(name)
            if value is None:
                where.append(f"n[$p{i}] IS NULL")
                continue
            value = clean_value(name, value)
            params[f"v{i}"] = dumps(value) if isinstance(value, dict) else value
            where.append(f"n[$p{i}] = $v{i}")
        query = (f"MATCH (n:`{label}`) {'WHERE ' + ' AND '.join(where) if where else ''} "
                 "RETURN n.key AS key, properties(n) AS props ORDER BY key LIMIT $limit")

        async def work(tx: AsyncManagedTransaction) -> list[Node]:
            result = await tx.run(query, params)
            return [Node(label, record["key"], _decode(record["props"]))
                    async for record in result]

        return await self._execute(work)

    async def neighbours(self, label: str, key: str, *, rel: str | None = None,
                         direction: Direction = "both", depth: int = 1,
                         ) -> list[tuple[Edge, Node]]:
        check_ref((label, key))
        hops = f"[{'' if rel is None else f':`{check_rel(rel)}`'}*1..{check_depth(depth)}]"
        pattern = {"out": f"-{hops}->", "in": f"<-{hops}-", "both": f"-{hops}-"}[
            check_direction(direction)]
        query = WALK.format(label=f"`{label}`", pattern=pattern)

        async def work(tx: AsyncManagedTransaction) -> list[dict[str, Any]]:
            return [record.data() async for record in await tx.run(query, key=key)]

        return _nearest(await self._execute(work))

    async def facts(self, label: str, key: str, *, lang: str = "en") -> list[Fact]:
        label, key = check_ref((label, key))

        async def work(tx: AsyncManagedTransaction) -> tuple[Any, list[dict[str, Any]]]:
            node = await (await tx.run(f"MATCH (n:`{label}` {{key: $key}}) "
                                       "RETURN properties(n) AS props LIMIT 1",
                                       key=key)).single()
            if node is None:
                return None, []
            result = await tx.run(LINKS.format(label=f"`{label}`"), key=key)
            return node["props"], [record.data() async for record in result]

        props, rows = await self._execute(work)
        if props is None:
            return []
        return node_facts(Node(label, key, _decode(props)), [_link(row) for row in rows],
                          lang=lang)

    async def count(self, label: str | None = None) -> int:
        query = ("MATCH (n) RETURN count(n) AS c" if label is None
                 else f"MATCH (n:`{check_label(label)}`) RETURN count(n) AS c")

        async def work(tx: AsyncManagedTransaction) -> int:
            record = await (await tx.run(query)).single()
            return int(record["c"]) if record else 0

        return await self._execute(work)

    async def close(self) -> None:
        if self._owns_driver:
            await self._driver.close()

    async def _ensure_keyed(self, labels: Iterable[str]) -> None:
        """A uniqueness constraint on ``key`` per label, made the first time it is written."""
        for label in labels:
            if label in self._keyed:
                continue
            query = (f"CREATE CONSTRAINT parley_{label.lower()}_key IF NOT EXISTS "
                     f"FOR (n:`{label}`) REQUIRE n.key IS UNIQUE")
            try:
                async with self._session() as session:
                    await (await session.run(query)).consume()
            except Neo4jError as exc:
                if _unavailable(exc):
                    raise GraphUnavailable(f"graph server unavailable: {exc}") from exc
                logger.debug("graph server refused a key constraint on %s: %s", label, exc)
            except (ServiceUnavailable, SessionExpired) as exc:
                raise GraphUnavailable(f"graph server unavailable: {exc}") from exc
            self._keyed.add(label)

    def _session(self) -> neo4j.AsyncSession:
        return self._driver.session(
            database=self.database,
            bookmark_manager=self._driver.execute_query_bookmark_manager)

    async def _execute(self, work: Callable[[AsyncManagedTransaction], Awaitable[T]], *,
                       write: bool = False) -> T:
        try:
            async with self._session() as session:
                if write:
                    return await session.execute_write(work)
                return await session.execute_read(work)
        except GraphError:
            raise
        except (ServiceUnavailable, SessionExpired, AuthError) as exc:
            raise GraphUnavailable(f"graph server unavailable: {exc}") from exc
        except Neo4jError as exc:
            if _unavailable(exc):
                raise GraphUnavailable(f"graph server unavailable: {exc}") from exc
            raise GraphError(f"graph query failed: {exc.code}: {exc.message}") from exc
        except DriverError as exc:
            raise GraphError(f"graph driver error: {exc}") from exc


def _unavailable(exc: Neo4jError) -> bool:
    code = exc.code or ""
    return isinstance(exc, TransientError | AuthError) or code.endswith(
        ("DatabaseNotFound", "DatabaseUnavailable"))


def _encode(props: Mapping[str, Any]) -> dict[str, Any]:
    encoded = {name: dumps(value) if isinstance(value, dict) else value
               for name, value in props.items()}
    json_names = sorted(name for name, value in props.items() if isinstance(value, dict))
    if json_names:
        encoded[JSON_PROPS] = json_names
    return encoded


def _decode(props: Mapping[str, Any]) -> dict[str, Any]:
    decoded = {name: value for name, value in props.items() if name not in ("key", JSON_PROPS)}
    for name in props.get(JSON_PROPS) or ():
        if isinstance(decoded.get(name), str):
            decoded[name] = json.loads(decoded[name])
    return decoded


def _link(row: Mapping[str, Any]) -> tuple[Edge, Node]:
    edge = Edge((row["src_labels"][0], row["src_key"]), row["rel"],
                (row["dst_labels"][0], row["dst_key"]), _decode(row["edge_props"]))
    props = row["props"]
    return edge, Node(row["labels"][0], props["key"], _decode(props))


def _nearest(rows: Iterable[Mapping[str, Any]]) -> list[tuple[Edge, Node]]:
    """Each node once: at its least depth, by the smallest edge reaching it there."""
    best: dict[NodeRef, tuple[tuple[Any, ...], tuple[Edge, Node]]] = {}
    for row in rows:
        edge, node = _link(row)
        rank = (row["depth"], edge.src, edge.rel, edge.dst)
        if node.ref not in best or rank < best[node.ref][0]:
            best[node.ref] = (rank, (edge, node))
    ordered = sorted(best.values(), key=lambda item: (item[0][0], item[1][1].ref))
    return [link for _, link in ordered]


def _chunks(rows: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start:start + BATCH]
