"""The knowledge tasks' payloads, parsed: what the worker will apply, or ``InvalidPayload``.

The editor parses a payload here before it enqueues it
(``knowledge.articles.submit.check_indexable``), so an article the worker would refuse is
refused at once, with the same message.
"""

from __future__ import annotations

from knowledge.graph.protocol import Edge, Node
from knowledge.ingest import Document, ParseError, parse_markdown_text
from workers.context import Payload
from workers.errors import InvalidPayload

MAX_TEXT_CHARS = 2_000_000
SOURCES = {"editor", "import", "kafka"}


def _string(payload: Payload, name: str, *, required: bool = True, default: str = "") -> str:
    value = payload.get(name)
    if value is None and not required:
        return default
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidPayload(f"{name!r} must be a non-empty string")
    return value


def document_from_payload(payload: Payload) -> Document:
    """The document an ``index_document`` payload describes, split into sections the way
    ``knowledge.ingest.parse_markdown`` splits a Markdown file (headings, lists, tables)."""
    doc_id, title = _string(payload, "doc_id"), _string(payload, "title")
    text = _string(payload, "text")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidPayload(f"'text' is longer than {MAX_TEXT_CHARS} characters")
    tags = payload.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidPayload("'tags' must be a list of strings")
    lang = _string(payload, "lang", required=False)
    source = _string(payload, "source", required=False, default="editor")
    if source not in SOURCES:
        raise InvalidPayload(f"'source' must be one of {sorted(SOURCES)}")
    try:
        # The leading newline keeps a body starting with "---" from being read as front matter.
        parsed = parse_markdown_text("\n" + text, source=source)
    except ParseError as exc:
        raise InvalidPayload(f"'text': {exc}") from None
    return Document(id=doc_id, title=title, lang=lang or parsed.lang, source=source,
                    tags=tuple(tags), sections=parsed.sections)


def doc_id_from_payload(payload: Payload) -> str:
    """The document a ``delete_document`` payload names."""
    return _string(payload, "doc_id")


def entity_from_payload(payload: Payload) -> tuple[Node, list[Edge]]:
    """The node and outgoing edges an ``upsert_entity`` payload describes."""
    label, key = _string(payload, "label"), _string(payload, "key")
    props, edges = payload.get("props") or {}, payload.get("edges") or []
    if not isinstance(props, dict):
        raise InvalidPayload("'props' must be an object")
    if not isinstance(edges, list) or not all(isinstance(e, dict) for e in edges):
        raise InvalidPayload("'edges' must be a list of objects")
    if not isinstance(payload.get("replace_edges", False), bool):
        raise InvalidPayload("'replace_edges' must be true or false")
    out = []
    for edge in edges:
        edge_props = edge.get("props") or {}
        if not isinstance(edge_props, dict):
            raise InvalidPayload("an edge's 'props' must be an object")
        out.append(Edge((label, key), _string(edge, "rel"),
                        (_string(edge, "dst_label"), _string(edge, "dst_key")), edge_props))
    return Node(label, key, props), out


def entity_key_from_payload(payload: Payload) -> tuple[str, str]:
    """The (label, key) a ``delete_entity`` payload names."""
    return _string(payload, "label"), _string(payload, "key")
