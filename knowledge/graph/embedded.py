"""The embedded graph store: nodes and edges in two SQLite tables, walked with recursive CTEs.

The default when no graph server is configured. Persistent (a file, WAL journal), one
connection behind a lock, blocking work off the event loop with ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from knowledge.graph.errors import GraphError, GraphUnavailable, MissingEndpoint
from knowledge.graph.facts import node_facts
from knowledge.graph.protocol import Direction, Edge, Fact, Node, NodeRef
from knowledge.graph.values import (
    check_depth,
    check_direction,
    check_key,
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

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    label TEXT NOT NULL, key TEXT NOT NULL, props TEXT NOT NULL,
    PRIMARY KEY (label, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS edges (
    src_label TEXT NOT NULL, src_key TEXT NOT NULL, rel TEXT NOT NULL,
    dst_label TEXT NOT NULL, dst_key TEXT NOT NULL, props TEXT NOT NULL,
    PRIMARY KEY (src_label, src_key, rel, dst_label, dst_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edges_by_dst ON edges (dst_label, dst_key, rel);
"""

# One row per (node reached, depth, edge it was reached by). The path is a JSON array of
# "label<US>key" strings (labels cannot hold the unit separator), so no node is revisited.
WALK = """
WITH RECURSIVE walk(label, key, depth, path, src_label, src_key, rel, dst_label, dst_key,
                    edge_props) AS (
    SELECT :label, :key, 0, json_array(:label || char(31) || :key),
           NULL, NULL, NULL, NULL, NULL, NULL
    UNION ALL
    SELECT e.dst_label, e.dst_key, w.depth + 1,
           json_insert(w.path, '$[#]', e.dst_label || char(31) || e.dst_key),
           e.src_label, e.src_key, e.rel, e.dst_label, e.dst_key, e.props
    FROM walk w JOIN edges e ON e.src_label = w.label AND e.src_key = w.key
    WHERE :out AND w.depth < :depth AND (:rel IS NULL OR e.rel = :rel)
      AND NOT EXISTS (SELECT 1 FROM json_each(w.path)
                      WHERE value = e.dst_label || char(31) || e.dst_key)
    UNION ALL
    SELECT e.src_label, e.src_key, w.depth + 1,
           json_insert(w.path, '$[#]', e.src_label || char(31) || e.src_key),
           e.src_label, e.src_key, e.rel, e.dst_label, e.dst_key, e.props
    FROM walk w JOIN edges e ON e.dst_label = w.label AND e.dst_key = w.key
    WHERE :in AND w.depth < :depth AND (:rel IS NULL OR e.rel = :rel)
      AND NOT EXISTS (SELECT 1 FROM json_each(w.path)
                      WHERE value = e.src_label || char(31) || e.src_key)
)
SELECT w.depth, w.src_label, w.src_key, w.rel, w.dst_label, w.dst_key, w.edge_props,
       n.label, n.key, n.props
FROM walk w JOIN nodes n ON n.label = w.label AND n.key = w.key
WHERE w.depth > 0
"""

# Every edge between the node and another one, with the other one.
LINKS = """
SELECT e.src_label, e.src_key, e.rel, e.dst_label, e.dst_key, e.props, n.label, n.key, n.props
FROM edges e JOIN nodes n ON n.label = e.dst_label AND n.key = e.dst_key
WHERE e.src_label = :label AND e.src_key = :key
  AND NOT (e.dst_label = :label AND e.dst_key = :key)
UNION ALL
SELECT e.src_label, e.src_key, e.rel, e.dst_label, e.dst_key, e.props, n.label, n.key, n.props
FROM edges e JOIN nodes n ON n.label = e.src_label AND n.key = e.src_key
WHERE e.dst_label = :label AND e.dst_key = :key
  AND NOT (e.src_label = :label AND e.src_key = :key)
"""

_PROP = "(SELECT 1 FROM json_each(n.props) WHERE key = ?"


class SQLiteGraphStore:
    """A ``GraphStore`` in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise GraphUnavailable(f"cannot open the graph database {self.path}: {exc}") from exc

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        return await asyncio.to_thread(self._locked, work, write)

    def _locked(self, work: Callable[[sqlite3.Connection], T], write: bool) -> T:
        try:
            return self._transaction(work, write)
        except sqlite3.OperationalError as exc:  # locked, disk full, unreadable file
            raise GraphUnavailable(f"graph database unavailable: {exc}") from exc
        except sqlite3.Error as exc:
            raise GraphError(f"graph database error: {exc}") from exc

    def _transaction(self, work: Callable[[sqlite3.Connection], T], write: bool) -> T:
        with self._lock:
            conn = self._conn
            if conn is None:
                raise GraphUnavailable("the graph store is closed")
            if not write:
                return work(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    async def upsert_nodes(self, nodes: Sequence[Node]) -> None:
        rows = [(node.label, node.key, dumps(node.props)) for node in map(clean_node, nodes)]
        if not rows:
            return

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO nodes (label, key, props) VALUES (?, ?, ?) "
                             "ON CONFLICT (label, key) DO UPDATE SET props = excluded.props",
                             rows)

        await self._run(work, write=True)

    async def upsert_edges(self, edges: Sequence[Edge]) -> None:
        cleaned = [clean_edge(edge) for edge in edges]
        if not cleaned:
            return

        def work(conn: sqlite3.Connection) -> None:
            for ref in dict.fromkeys(end for edge in cleaned for end in (edge.src, edge.dst)):
                if not _exists(conn, ref):
                    raise MissingEndpoint(f"no node {ref[0]} {ref[1]!r}",
                                          details={"label": ref[0], "key": ref[1]})
            conn.executemany(
                "INSERT INTO edges VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (src_label, src_key, rel, dst_label, dst_key) "
                "DO UPDATE SET props = excluded.props",
                [(*edge.src, edge.rel, *edge.dst, dumps(edge.props)) for edge in cleaned])

        await self._run(work, write=True)

    async def delete_node(self, label: str, key: str) -> bool:
        ref = check_ref((label, key))

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM edges WHERE src_label = ? AND src_key = ?", ref)
            conn.execute("DELETE FROM edges WHERE dst_label = ? AND dst_key = ?", ref)
            return conn.execute("DELETE FROM nodes WHERE label = ? AND key = ?",
                                ref).rowcount > 0

        return await self._run(work, write=True)

    async def delete_edge(self, src: NodeRef, rel: str, dst: NodeRef) -> bool:
        row = (*check_ref(src), check_rel(rel), *check_ref(dst))

        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "DELETE FROM edges WHERE src_label = ? AND src_key = ? AND rel = ? "
                "AND dst_label = ? AND dst_key = ?", row).rowcount > 0

        return await self._run(work, write=True)

    async def get(self, label: str, key: str) -> Node | None:
        ref = check_ref((label, key))

        def work(conn: sqlite3.Connection) -> Node | None:
            row = conn.execute("SELECT props FROM nodes WHERE label = ? AND key = ?",
                               ref).fetchone()
            return Node(ref[0], ref[1], json.loads(row[0])) if row else None

        return await self._run(work)

    async def find(self, label: str, *, limit: int = 50, **equals: Any) -> list[Node]:
        sql = ["SELECT key, props FROM nodes n WHERE label = ?"]
        params: list[Any] = [check_label(label)]
        for name, value in equals.items():
            condition, values = _equals(check_prop_name(name), value)
            sql.append(f"AND {condition}")
            params += values
        sql.append("ORDER BY key LIMIT ?")
        params.append(check_limit(limit))

        def work(conn: sqlite3.Connection) -> list[Node]:
            rows = conn.execute(" ".join(sql), params).fetchall()
            return [Node(label, key, json.loads(props)) for key, props in rows]

        return await self._run(work)

    async def neighbours(self, label: str, key: str, *, rel: str | None = None,
                         direction: Direction = "both", depth: int = 1,
                         ) -> list[tuple[Edge, Node]]:
        params = {"label": check_label(label), "key": check_key(key),
                  "rel": None if rel is None else check_rel(rel),
                  "depth": check_depth(depth),
                  "out": check_direction(direction) in ("out", "both"),
                  "in": direction in ("in", "both")}

        def work(conn: sqlite3.Connection) -> list[tuple[Edge, Node]]:
            return _nearest(conn.execute(WALK, params).fetchall())

        return await self._run(work)

    async def facts(self, label: str, key: str, *, lang: str = "en") -> list[Fact]:
        ref = check_ref((label, key))

        def work(conn: sqlite3.Connection) -> list[Fact]:
            row = conn.execute("SELECT props FROM nodes WHERE label = ? AND key = ?",
                               ref).fetchone()
            if row is None:
                return []
            links = [(Edge((r[0], r[1]), r[2], (r[3], r[4]), json.loads(r[5])),
                      Node(r[6], r[7], json.loads(r[8])))
                     for r in conn.execute(LINKS, {"label": ref[0], "key": ref[1]})]
            return node_facts(Node(*ref, json.loads(row[0])), links, lang=lang)

        return await self._run(work)

    async def count(self, label: str | None = None) -> int:
        if label is None:
            return await self._run(
                lambda conn: conn.execute("SELECT count(*) FROM nodes").fetchone()[0])
        check_label(label)
        return await self._run(lambda conn: conn.execute(
            "SELECT count(*) FROM nodes WHERE label = ?", (label,)).fetchone()[0])

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _equals(name: str, value: Any) -> tuple[str, list[Any]]:
    """A condition on ``nodes n`` that its prop ``name`` equals ``value``, same type."""
    if value is None:
        return f"NOT EXISTS {_PROP})", [name]
    value = clean_value(name, value)
    if isinstance(value, bool):
        return f"EXISTS {_PROP} AND type = ?)", [name, "true" if value else "false"]
    if isinstance(value, str):
        return f"EXISTS {_PROP} AND type = 'text' AND value = ?)", [name, value]
    if isinstance(value, int | float):
        return f"EXISTS {_PROP} AND type IN ('integer', 'real') AND value = ?)", [name, value]
    kind = "array" if isinstance(value, list) else "object"
    return f"EXISTS {_PROP} AND type = ? AND value = json(?))", [name, kind, dumps(value)]


def _exists(conn: sqlite3.Connection, ref: NodeRef) -> bool:
    return conn.execute("SELECT 1 FROM nodes WHERE label = ? AND key = ?",
                        ref).fetchone() is not None


def _nearest(rows: list[tuple[Any, ...]]) -> list[tuple[Edge, Node]]:
    """Each node once: at its least depth, by the smallest edge reaching it there."""
    best: dict[NodeRef, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
    for row in rows:
        depth, src_label, src_key, rel, dst_label, dst_key = row[:6]
        rank = (depth, (src_label, src_key), rel, (dst_label, dst_key))
        ref = (row[7], row[8])
        if ref not in best or rank < best[ref][0]:
            best[ref] = (rank, row)
    ordered = sorted(best.values(), key=lambda item: (item[0][0], item[1][7], item[1][8]))
    return [(Edge((row[1], row[2]), row[3], (row[4], row[5]), json.loads(row[6])),
             Node(row[7], row[8], json.loads(row[9]))) for _, row in ordered]
