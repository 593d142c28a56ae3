"""What Parley may ask of a knowledge graph.

A node is identified by ``(label, key)``: the label says what it is (``Product``), the key is
unique within the label (the SKU). An edge is identified by ``(src, rel, dst)``: at most one
edge of a type runs from one node to another. Properties are JSON-safe: strings, numbers,
booleans, lists of one of those, and dicts such as ``{"en": ..., "zh": ...}``; ``None`` means
"no such property" and is not stored. ``key`` and ``_json`` are reserved property names.

Labels match ``^[A-Z][A-Za-z]{0,39}$`` and relationship types ``^[A-Z][A-Z_]{0,39}$``:
a graph server cannot take them as query parameters, so they are checked before they are
written into a query (``InvalidGraphName`` otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Direction = Literal["out", "in", "both"]
NodeRef = tuple[str, str]


@dataclass(frozen=True)
class Node:
    label: str
    key: str
    props: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> NodeRef:
        return (self.label, self.key)


@dataclass(frozen=True)
class Edge:
    src: NodeRef
    rel: str
    dst: NodeRef
    props: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fact:
    """One statement an answer may cite, e.g. ``(NH-BL-200's name, warranty_months, 24)``."""

    source_id: str
    subject: str
    predicate: str
    object: str


class GraphStore(Protocol):
    """Nodes and edges of the company's knowledge, and facts read from them."""

    async def upsert_nodes(self, nodes: Sequence[Node]) -> None:
        """Create or replace each node by ``(label, key)``: its props are replaced."""
        ...

    async def upsert_edges(self, edges: Sequence[Edge]) -> None:
        """Create or replace each edge by ``(src, rel, dst)``.

        Both ends must exist, else ``MissingEndpoint`` and none of the batch is written.
        """
        ...

    async def delete_node(self, label: str, key: str) -> bool:
        """Delete the node and every edge touching it; False if there was no such node."""
        ...

    async def delete_edge(self, src: NodeRef, rel: str, dst: NodeRef) -> bool: ...

    async def get(self, label: str, key: str) -> Node | None: ...

    async def find(self, label: str, *, limit: int = 50, **equals: Any) -> list[Node]:
        """Nodes of a label whose props equal ``equals`` (``None``: prop absent), by key."""
        ...

    async def neighbours(self, label: str, key: str, *, rel: str | None = None,
                         direction: Direction = "both", depth: int = 1,
                         ) -> list[tuple[Edge, Node]]:
        """Nodes within ``depth`` (1..3) hops, each once, with the edge it was reached by.

        Every hop follows ``direction`` and, if given, ``rel``. The start node is never in
        the result; nodes come nearest first, then by label and key. Of several edges that
        reach a node at its least depth, the smallest ``(src, rel, dst)`` is given.
        """
        ...

    async def facts(self, label: str, key: str, *, lang: str = "en") -> list[Fact]:
        """The node's props as facts, then one fact per edge, naming the other end.

        Dict props give their ``lang`` text, falling back to ``"en"``. A node is named by
        its ``name`` or ``title`` prop (in ``lang``), else by its key. Unknown node: ``[]``.
        """
        ...

    async def count(self, label: str | None = None) -> int: ...

    async def close(self) -> None: ...
