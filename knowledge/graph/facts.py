"""Turn a node and its edges into ``Fact``s, the same way for every store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from knowledge.graph.protocol import Edge, Fact, Node

NAME_PROPS = ("name", "title")


def node_facts(node: Node, links: Sequence[tuple[Edge, Node]], *, lang: str = "en",
               ) -> list[Fact]:
    """The node's props (by name), then one fact per edge (by rel, then the other end)."""
    subject = display_name(node, lang)
    own = f"graph:{node.label}:{node.key}"
    facts = [Fact(own, subject, name, text)
             for name, value in sorted(node.props.items())
             if (text := render(value, lang))]
    for edge, other in sorted(links, key=lambda link: (link[0].rel, link[0].src, link[0].dst)):
        other_name = display_name(other, lang)
        outgoing = edge.src == node.ref
        src_name, dst_name = (subject, other_name) if outgoing else (other_name, subject)
        detail = ", ".join(f"{name}: {render(value, lang)}"
                           for name, value in sorted(edge.props.items()))
        facts.append(Fact(edge_source_id(edge), src_name, edge.rel.lower().replace("_", " "),
                          f"{dst_name} ({detail})" if detail else dst_name))
    return facts


def edge_source_id(edge: Edge) -> str:
    (src_label, src_key), (dst_label, dst_key) = edge.src, edge.dst
    return f"graph:{src_label}:{src_key}-{edge.rel}->{dst_label}:{dst_key}"


def display_name(node: Node, lang: str = "en") -> str:
    for prop in NAME_PROPS:
        text = render(node.props.get(prop), lang)
        if text:
            return text
    return node.key


def render(value: Any, lang: str = "en") -> str:
    """A prop as text: dicts pick ``lang`` then ``"en"``; lists joined; booleans true/false."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        for choice in (lang, "en"):
            if isinstance(value.get(choice), str | int | float) and value[choice] != "":
                return render(value[choice], lang)
        return ", ".join(f"{name}: {render(item, lang)}" for name, item in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(render(item, lang) for item in value)
    return str(value)
