"""Checks shared by every graph store: names before they reach a query, values before storage."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from knowledge.graph.errors import InvalidGraphName, InvalidGraphValue
from knowledge.graph.protocol import Edge, Node, NodeRef

LABEL = re.compile(r"[A-Z][A-Za-z]{0,39}")
REL = re.compile(r"[A-Z][A-Z_]{0,39}")
RESERVED = frozenset({"key", "_json"})
MAX_DEPTH = 3
_INT64 = 2**63


def check_label(label: object) -> str:
    if not isinstance(label, str) or not LABEL.fullmatch(label):
        raise InvalidGraphName(f"invalid node label {label!r}", details={"label": repr(label)})
    return label


def check_rel(rel: object) -> str:
    if not isinstance(rel, str) or not REL.fullmatch(rel):
        raise InvalidGraphName(f"invalid relationship type {rel!r}", details={"rel": repr(rel)})
    return rel


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidGraphName(f"invalid node key {key!r}")
    return key


def check_ref(ref: object) -> NodeRef:
    if not isinstance(ref, tuple) or len(ref) != 2:
        raise InvalidGraphName(f"invalid node reference {ref!r}: want (label, key)")
    return (check_label(ref[0]), check_key(ref[1]))


def check_depth(depth: object) -> int:
    if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= MAX_DEPTH:
        raise InvalidGraphValue(f"depth must be 1..{MAX_DEPTH}, not {depth!r}")
    return depth


def check_direction(direction: object) -> str:
    if direction not in ("out", "in", "both"):
        raise InvalidGraphValue(f"direction must be 'out', 'in' or 'both', not {direction!r}")
    return str(direction)


def check_limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise InvalidGraphValue(f"limit must be a non-negative int, not {limit!r}")
    return limit


def check_prop_name(name: object) -> str:
    if not isinstance(name, str) or not name or name in RESERVED:
        raise InvalidGraphName(f"invalid property name {name!r}")
    return name


def clean_props(props: Mapping[str, Any] | None) -> dict[str, Any]:
    """A storable copy: ``None`` dropped, tuples as lists, dicts deep-copied."""
    if props is None:
        return {}
    if not isinstance(props, Mapping):
        raise InvalidGraphValue(f"props must be a mapping, not {type(props).__name__}")
    return {check_prop_name(name): clean_value(name, value)
            for name, value in props.items() if value is not None}


def clean_value(name: str, value: Any) -> Any:
    if _scalar(value):
        return value
    if isinstance(value, (list, tuple)):
        items = list(value)
        if not all(_scalar(item) for item in items):
            raise InvalidGraphValue(f"property {name!r}: a list may hold only scalars")
        if len({type(item) for item in items}) > 1:
            raise InvalidGraphValue(f"property {name!r}: a list must hold one type")
        return items
    if isinstance(value, Mapping):
        try:
            return json.loads(dumps(value))
        except (TypeError, ValueError) as exc:
            raise InvalidGraphValue(f"property {name!r}: {exc}") from exc
    raise InvalidGraphValue(f"property {name!r}: unsupported type {type(value).__name__}")


def clean_node(node: Node) -> Node:
    if not isinstance(node, Node):
        raise InvalidGraphValue(f"expected a Node, not {type(node).__name__}")
    return Node(check_label(node.label), check_key(node.key), clean_props(node.props))


def clean_edge(edge: Edge) -> Edge:
    if not isinstance(edge, Edge):
        raise InvalidGraphValue(f"expected an Edge, not {type(edge).__name__}")
    return Edge(check_ref(edge.src), check_rel(edge.rel), check_ref(edge.dst),
                clean_props(edge.props))


def dumps(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, no NaN; equal values give equal text."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False)


def _scalar(value: Any) -> bool:
    if isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return -_INT64 <= value < _INT64
    return isinstance(value, float) and math.isfinite(value)
