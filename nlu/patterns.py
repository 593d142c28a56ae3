"""Pattern entities (order ids in the project's format, emails, phone numbers, amounts,
dates) and a gazetteer learnt from annotated spans. Matches never overlap: earlier, longer,
higher-priority spans win."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from core.order_ids import OrderIds
from nlu.data import Entity

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PHONE = re.compile(r"(?<!\d)(?:\+\d{1,3}[\s-]?)?(?:\d[\s-]?){9,12}\d(?!\d)")
AMOUNT = re.compile(r"(?:[€$¥£]\s?\d+(?:[.,]\d{1,2})?"
                    r"|\d+(?:[.,]\d{1,2})?\s?(?:EUR|USD|CNY|RMB|euros?|元|块))")
DATE = re.compile(
    r"\b(?:\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}(?:/\d{2,4})?|today|yesterday|tomorrow|"
    r"last (?:week|monday|tuesday|wednesday|thursday|friday|saturday|sunday)|"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2})\b"
    r"|\d{1,2}月\d{1,2}[日号]|今天|昨天|前天|明天|上周[一二三四五六日天]?|上个月",
    re.IGNORECASE,
)
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


PATTERNS = "ParleyPatterns"


def detect_language(text: str) -> str:
    return "zh" if CJK.search(text) else "en"


def written_language(text: str, spans: Sequence[Entity], languages: Sequence[str] = (),
                     default: str = "en") -> str | None:
    """The language a customer's message is written in, for the dialogue's ``language`` slot:
    its entity values left out (an order id or a product name alone says nothing), Chinese
    characters → ``zh``, Latin words → ``en``, nothing to go by (digits, an id) → None (the
    conversation keeps its language); one the project does not speak (``languages``) becomes
    its ``default``."""
    words = text
    for span in sorted(spans, key=lambda s: s.start, reverse=True):
        words = words[:span.start] + " " + words[span.end:]
    if not (CJK.search(words) or LATIN_WORD.search(words)):
        return None
    language = detect_language(words)
    return language if not languages or language in languages else default


@lru_cache(maxsize=8)
def _order_candidate(digits: int) -> re.Pattern[str]:
    """Bare digit runs are only order-id *candidates*: the order form checks their format."""
    # ASCII look-arounds: Chinese text puts digits right after what ``\w`` counts as word.
    return re.compile(rf"(?<![A-Za-z0-9-])#?(\d{{{min(5, digits)},{max(8, digits)}}})"
                      r"(?![A-Za-z0-9-])")


def pattern_spans(text: str, order_ids: OrderIds = OrderIds()) -> list[Entity]:
    """``order_ids``: the project's order id format (``orders:`` in parley.yml)."""
    def span(m: re.Match[str], entity: str, value: str, confidence: float = 1.0) -> Entity:
        return Entity(m.start(), m.end(), entity, value, PATTERNS, confidence)

    spans: list[Entity] = [Entity(start, end, "order_id", value, PATTERNS, 1.0)
                           for start, end, value in order_ids.find(text)]
    for m in EMAIL.finditer(text):
        spans.append(span(m, "email", m.group(0)))
    for m in _order_candidate(order_ids.digits).finditer(text):
        spans.append(span(m, "order_id", m.group(1), confidence=0.5))
    for m in DATE.finditer(text):
        spans.append(span(m, "date", m.group(0)))
    for m in AMOUNT.finditer(text):
        spans.append(span(m, "amount", m.group(0)))
    for m in PHONE.finditer(text):
        spans.append(span(m, "phone", m.group(0).strip()))
    return spans


class Gazetteer:
    """Entity values seen in annotated training data (e.g. product names), matched case-blind."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values  # lower-cased surface form -> entity name
        forms = sorted(values, key=len, reverse=True)
        self._regex = re.compile(
            "|".join(_boundary(re.escape(f)) for f in forms), re.IGNORECASE) if forms else None

    def spans(self, text: str) -> list[Entity]:
        if self._regex is None:
            return []
        return [Entity(m.start(), m.end(), self.values[m.group(0).lower()], m.group(0),
                       extractor="ParleyGazetteer", confidence=0.9)
                for m in self._regex.finditer(text)]


def _boundary(form: str) -> str:
    return form if CJK.search(form) else rf"(?<!\w){form}(?!\w)"


def merge(*groups: list[Entity]) -> list[Entity]:
    """Keep non-overlapping spans; earlier groups win, then longer spans."""
    chosen: list[Entity] = []
    for group in groups:
        for span in sorted(group, key=lambda s: (-(s.end - s.start), s.start)):
            if all(span.end <= c.start or span.start >= c.end for c in chosen):
                chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def combine(patterns: list[Entity], model: list[Entity], gazetteer: list[Entity] | None = None
            ) -> list[Entity]:
    """Entities from every source without overlap: exact patterns (an ``PL-`` order id, an
    email) win, then the fine-tuned model, then pattern *candidates* (a bare number that may be
    an order id) and the gazetteer."""
    exact = [s for s in patterns if s.confidence >= 1.0]
    candidates = [s for s in patterns if s.confidence < 1.0]
    return merge(exact, model, candidates, gazetteer or [])
