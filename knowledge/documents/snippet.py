"""Plain-text highlights for the embedded index: a window of the original text around the
first match, matched words wrapped in «». Matching uses ``tokenize`` so that ``returns``
highlights ``returned`` and 无线 highlights 无线耳机."""

from __future__ import annotations

from collections.abc import Collection

from knowledge.documents.tokenize import CJK_RUN, TOKEN_RUNS, normalize, word_tokens

WIDTH = 160
OPEN, CLOSE = "«", "»"


def _spans(text: str, terms: Collection[str]) -> list[tuple[int, int]]:
    chinese = [term for term in terms if CJK_RUN.fullmatch(term)]
    spans: list[tuple[int, int]] = []
    for match in TOKEN_RUNS.finditer(text):
        start = match.start()
        if match.group(1):
            run = normalize(match.group(1))
            for term in chinese:
                at = run.find(term)
                while at >= 0:
                    spans.append((start + at, start + at + len(term)))
                    at = run.find(term, at + 1)
        elif any(token in terms for token in word_tokens(normalize(match.group(2)))):
            spans.append((start, match.end()))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for begin, end in spans:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def snippet(text: str, terms: Collection[str], width: int = WIDTH) -> str:
    """Up to ``width`` characters of ``text`` around the first match of ``terms``."""
    spans = _spans(text, frozenset(terms))
    start = 0
    if spans and spans[0][1] > width:
        start = max(0, spans[0][0] - width // 4)
        space = text.rfind(" ", 0, start + 1)
        start = space + 1 if space > start - 20 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start + width // 2, end)
        end = space if space > 0 else end
    out, at = [], start
    for begin, finish in spans:
        if finish <= start or begin >= end:
            continue
        begin, finish = max(begin, start), min(finish, end)
        out += [text[at:begin], OPEN, text[begin:finish], CLOSE]
        at = finish
    out.append(text[at:end])
    body = "".join(out).strip()
    return ("…" if start > 0 else "") + body + ("…" if end < len(text) else "")
