"""Load the demo company (a project's ``company/*.yml``) into a graph store.

    (Customer)-[:PLACED]->(Order)-[:CONTAINS {qty}]->(Product)-[:IN_CATEGORY]->(Category)
                                                     (Product)-[:COVERED_BY]->(Policy)

Policies ``warranty`` and ``returns`` cover every product. Loading is an upsert, so running
it twice changes nothing; nodes whose YAML entry was removed are not deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from knowledge.graph.protocol import Edge, GraphStore, Node
from knowledge.graph.values import dumps

logger = logging.getLogger(__name__)

FILES = ("products", "customers", "orders", "policies")
CUSTOMER_PROPS = ("name", "language", "email")
COVERING_POLICIES = ("warranty", "returns")


async def load_company(store: GraphStore, source: Path) -> dict[str, int]:
    """Upsert the company's nodes and edges; counts per label and per relationship type."""
    nodes, edges = company_graph({stem: _read(Path(source), stem) for stem in FILES})
    await store.upsert_nodes(nodes)
    await store.upsert_edges(edges)
    counts = Counter(node.label for node in nodes)
    counts.update(edge.rel for edge in edges)
    logger.info("loaded the company graph: %d nodes, %d edges", len(nodes), len(edges))
    return dict(counts)


def company_graph(data: Mapping[str, list[dict[str, Any]]]) -> tuple[list[Node], list[Edge]]:
    """The nodes and edges for the parsed YAML files (keyed by file stem)."""
    nodes: dict[tuple[str, str], Node] = {}
    edges: list[Edge] = []

    def add(label: str, key: Any, props: Mapping[str, Any]) -> tuple[str, str]:
        ref = (label, str(key))
        nodes[ref] = Node(label, str(key), {name: _plain(value) for name, value in props.items()})
        return ref

    def link(src: tuple[str, str], rel: str, dst: tuple[str, str], **props: Any) -> None:
        missing = next((end for end in (src, dst) if end not in nodes), None)
        if missing:
            logger.warning("company data: no %s %s for %s %s %s %s %s",
                           *missing, *src, rel, *dst)
            return
        edges.append(Edge(src, rel, dst, props))

    for policy in data.get("policies", []):
        add("Policy", policy["id"], _without(policy, "id"))
    for product in data.get("products", []):
        sku = add("Product", product["sku"], _without(product, "sku", "category"))
        if product.get("category"):
            category = str(product["category"])
            add("Category", category, {"name": category.replace("_", " ").capitalize()})
            link(sku, "IN_CATEGORY", ("Category", category))
        for policy_id in COVERING_POLICIES:
            link(sku, "COVERED_BY", ("Policy", policy_id))
    for customer in data.get("customers", []):
        add("Customer", customer["id"],
            {name: customer.get(name) for name in CUSTOMER_PROPS})
    for order in data.get("orders", []):
        ref = add("Order", order["id"], _without(order, "id", "customer", "items"))
        if order.get("customer") is not None:
            link(("Customer", str(order["customer"])), "PLACED", ref)
        for item in order.get("items", []):
            link(ref, "CONTAINS", ("Product", str(item["sku"])), qty=int(item.get("qty", 1)))
    return list(nodes.values()), edges


def _read(source: Path, stem: str) -> list[dict[str, Any]]:
    path = source / f"{stem}.yml"
    if not path.exists():
        return []
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    # Either {<file stem>: [...]} or a bare list.
    return list(doc.get(stem) or []) if isinstance(doc, dict) else list(doc)


def _without(item: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {name: value for name, value in item.items() if name not in names}


def _plain(value: Any) -> Any:
    """YAML values as graph props: dates as ISO text, nested lists of dicts as JSON text."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(name): _plain(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        items = [_plain(item) for item in value]
        if any(isinstance(item, dict | list) for item in items):
            return dumps(items)
        return items
    return value
