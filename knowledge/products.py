"""Products as the chat looks them up: ``Product`` nodes of the company graph.

The graph is the one source of products: the entity editor writes it (through the workers,
``knowledge.articles.entities``) and ``knowledge.sync`` loads the project's ``company/products.yml``
into it, so a product saved in the editor is found from the chat as soon as its task ran.
A customer names a product by one of its ``aliases`` or by its ``name`` in any language,
matched whole, trimmed and case-blind; of several products with that name, the first by SKU.
Finding by name reads every product node: fine for a catalogue of thousands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from knowledge.graph.protocol import GraphStore, Node

LABEL = "Product"


@dataclass(frozen=True)
class Product:
    sku: str
    name: dict[str, str]
    description: dict[str, str]
    price: float
    warranty_months: int
    returnable: bool
    aliases: tuple[str, ...] = field(default_factory=tuple)


async def find_product(graph: GraphStore, name: str) -> Product | None:
    """The product the customer calls ``name``, if any."""
    wanted = name.strip().lower()
    if not wanted:
        return None
    for node in await graph.find(LABEL, limit=await graph.count(LABEL)):
        if wanted in _names(node):
            return _product(node)
    return None


async def get_product(graph: GraphStore, sku: str) -> Product | None:
    node = await graph.get(LABEL, sku)
    return _product(node) if node is not None else None


def _names(node: Node) -> set[str]:
    aliases = node.props.get("aliases")
    names = [*(aliases if isinstance(aliases, list) else []),
             *_texts(node.props.get("name")).values()]
    return {str(n).strip().lower() for n in names}


def _product(node: Node) -> Product:
    props = node.props
    aliases = props.get("aliases")
    return Product(sku=node.key, name=_texts(props.get("name")) or {"en": node.key},
                   description=_texts(props.get("description")),
                   price=_number(props.get("price"), 0.0),
                   warranty_months=int(_number(props.get("warranty_months"), 24)),
                   returnable=props.get("returnable") is not False,
                   aliases=tuple(str(a) for a in aliases) if isinstance(aliases, list) else ())


def _texts(value: Any) -> dict[str, str]:
    """A text prop by language: ``{"en": ..., "zh": ...}``, or one plain string as English."""
    if isinstance(value, Mapping):
        return {str(lang): text for lang, text in value.items() if isinstance(text, str)}
    return {"en": value} if isinstance(value, str) and value else {}


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else default
