"""Products and policies in the company graph, as the entity editor sees and changes them.

An entity is a node with its props and its relations. Saving one replaces its props and,
when relations are given, makes its *outgoing* relations exactly those (incoming ones, such
as an order's ``CONTAINS``, belong to the other node and are left alone).
"""

from __future__ import annotations

from typing import Any

from core.errors import Conflict, NotFound
from knowledge.articles.schemas import (
    EntityPublic,
    EntitySummary,
    EntityUpsert,
    RelationPublic,
)
from knowledge.graph.protocol import Edge, GraphStore, Node
from knowledge.graph.values import clean_props

LABELS = ("Product", "Policy")


def display_name(node: Node, lang: str = "en") -> str:
    for prop in ("name", "title"):
        value = node.props.get(prop)
        if isinstance(value, dict):
            value = value.get(lang) or value.get("en") or next(iter(value.values()), None)
        if isinstance(value, str) and value:
            return value
    return node.key


async def list_entities(graph: GraphStore, *, label: str, query: str | None = None,
                        limit: int = 200) -> list[EntitySummary]:
    nodes = await graph.find(label, limit=1000)
    wanted = (query or "").strip().lower()
    items = [EntitySummary(label=n.label, key=n.key, name=display_name(n)) for n in nodes]
    if wanted:
        items = [i for i in items if wanted in i.key.lower() or wanted in i.name.lower()]
    return items[:limit]


async def get_entity(graph: GraphStore, *, label: str, key: str) -> EntityPublic:
    node = await graph.get(label, key)
    if node is None:
        raise NotFound(f"No {label} {key!r}.", code="entity_not_found")
    relations = []
    for edge, other in await graph.neighbours(label, key, direction="both"):
        relations.append(RelationPublic(
            rel=edge.rel, direction="out" if edge.src == node.ref else "in",
            label=other.label, key=other.key, name=display_name(other),
            props=dict(edge.props)))
    return EntityPublic(label=node.label, key=node.key, name=display_name(node),
                        props=dict(node.props), relations=relations)


async def upsert_payload(graph: GraphStore, *, label: str, key: str,
                         data: EntityUpsert) -> dict[str, Any]:
    """The ``upsert_entity`` task payload, checked: storable props, existing endpoints.

    ``replace_edges``: the listed edges are all of the node's outgoing ones (the editor sends
    every row), so the others are removed; without ``edges`` the relations are left alone.
    """
    props = clean_props(data.props)  # InvalidGraphName / InvalidGraphValue: 422
    edges = [{"rel": e.rel, "dst_label": e.dst_label, "dst_key": e.dst_key,
              "props": clean_props(e.props)} for e in data.edges or []]
    for edge in data.edges or []:
        if (edge.dst_label, edge.dst_key) == (label, key):
            raise Conflict("A relation cannot point at the entity itself.", code="self_relation")
        if await graph.get(edge.dst_label, edge.dst_key) is None:
            raise Conflict(f"No {edge.dst_label} {edge.dst_key!r} to relate to.",
                           code="missing_endpoint",
                           details={"label": edge.dst_label, "key": edge.dst_key})
    return {"label": label, "key": key, "props": props, "edges": edges,
            "replace_edges": data.edges is not None}


async def apply_upsert(graph: GraphStore, payload: dict[str, Any]) -> None:
    """Write an ``upsert_entity`` payload: the node, its listed outgoing relations and, with
    ``replace_edges``, no other outgoing ones."""
    label, key = payload["label"], payload["key"]
    await graph.upsert_nodes([Node(label, key, payload["props"])])
    wanted = [Edge((label, key), e["rel"], (e["dst_label"], e["dst_key"]), e.get("props") or {})
              for e in payload["edges"]]
    await graph.upsert_edges(wanted)
    if not payload.get("replace_edges"):
        return
    keep = {(e.rel, e.dst) for e in wanted}
    for edge, _ in await graph.neighbours(label, key, direction="out"):
        if (edge.rel, edge.dst) not in keep:
            await graph.delete_edge(edge.src, edge.rel, edge.dst)


async def check_exists(graph: GraphStore, *, label: str, key: str) -> None:
    if await graph.get(label, key) is None:
        raise NotFound(f"No {label} {key!r}.", code="entity_not_found")
