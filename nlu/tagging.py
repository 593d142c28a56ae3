"""BIO tags between character spans and tokens, for the entity extractor.

Every token inside an annotated span is tagged (``B-x`` on the span's first token, ``I-x`` on
the rest); decoding turns runs of tags back into character spans of the original text.
"""

from __future__ import annotations

from collections.abc import Sequence

from nlu.data import Entity

OUTSIDE = "O"
IGNORE = -100  # special tokens and padding: no loss


def tag_names(entity_types: Sequence[str]) -> list[str]:
    names = [OUTSIDE]
    for entity in sorted(set(entity_types)):
        names += [f"B-{entity}", f"I-{entity}"]
    return names


def token_tags(offsets: Sequence[tuple[int, int]], special: Sequence[bool],
               entities: Sequence[Entity], tag_index: dict[str, int]) -> list[int]:
    """One tag id per token (``IGNORE`` for special tokens)."""
    tags: list[int] = []
    for (start, end), is_special in zip(offsets, special, strict=True):
        if is_special or end <= start:
            tags.append(IGNORE)
            continue
        tag = OUTSIDE
        for ent in entities:
            if start < ent.end and end > ent.start:
                first = start <= ent.start
                tag = f"{'B' if first else 'I'}-{ent.entity}"
                break
        tags.append(tag_index.get(tag, tag_index[OUTSIDE]))
    return tags


def decode(text: str, offsets: Sequence[tuple[int, int]], special: Sequence[bool],
           tags: Sequence[str], confidences: Sequence[float], *,
           extractor: str = "") -> list[Entity]:
    """Runs of ``B-x I-x …`` (an ``I-x`` after ``O`` opens a span too) become spans, each
    valued as written and as sure as its tags on average."""
    spans: list[Entity] = []
    current: list[int] | None = None  # [start, end]
    entity = ""
    scores: list[float] = []

    def close() -> None:
        nonlocal current
        if current is not None:
            start, end = current
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if end > start:
                spans.append(Entity(start, end, entity, text[start:end], extractor,
                                    sum(scores) / len(scores)))
        current = None

    for (start, end), is_special, tag, conf in zip(offsets, special, tags, confidences,
                                                   strict=True):
        if is_special or end <= start:
            continue
        if tag == OUTSIDE:
            close()
            continue
        prefix, _, name = tag.partition("-")
        if current is not None and prefix == "I" and name == entity:
            current[1] = end
            scores.append(conf)
            continue
        close()
        current, entity, scores = [start, end], name, [conf]
    close()
    return spans
