"""The groundedness gate: every sentence of an answer must be supported by a source.

A sentence is supported by a source when most of its content terms occur in one sentence
window of that source, every number it states occurs there too, and it does not flip a
negation. Unsupported sentences are never sent; if nothing supported remains the bot abstains.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from knowledge.text import (
    citations_in,
    content_terms,
    negated,
    negated_terms,
    numbers,
    split_sentences,
    strip_citations,
)

MIN_COVERAGE = 0.6
MIN_TERMS = 2
NEGATION_WORDS = frozenset({"not", "no", "never", "cannot", "can't", "won't", "don't",
                            "doesn't", "isn't", "aren't", "without", "none", "nor"})


@dataclass(frozen=True)
class SentenceCheck:
    sentence: str  # without citation markers
    supported: bool
    source: int | None  # the source number that supports it
    coverage: float
    reason: str  # supported | no_content | unsupported | number_mismatch | negation_mismatch


def _windows(text: str) -> list[str]:
    sentences = split_sentences(text) or [text]
    pairs = [f"{a} {b}" for a, b in pairwise(sentences)]
    return sentences + pairs


def _negation_flipped(sentence: str, terms: set[str], window: str) -> bool:
    """The source negates what the sentence asserts, or the sentence negates something the
    source does not: "you cannot return an opened blender" is not supported by "opened
    blenders can be returned … cannot take back one used with food", whose negation is about
    something else."""
    source_scope = negated_terms(window) - NEGATION_WORDS
    if source_scope & terms and not negated(sentence):
        return True
    sentence_scope = negated_terms(sentence) - NEGATION_WORDS
    if not sentence_scope:
        return False
    return len(sentence_scope & source_scope) / len(sentence_scope) < MIN_COVERAGE


def check_sentence(sentence: str, sources: dict[int, str], *,
                   min_coverage: float = MIN_COVERAGE) -> SentenceCheck:
    clean = strip_citations(sentence)
    terms = content_terms(clean)
    if len(terms - numbers(clean)) < MIN_TERMS:  # "1.", "Yes." say nothing checkable
        return SentenceCheck(clean, False, None, 0.0, "no_content")
    cited = [n for n in citations_in(sentence) if n in sources]
    order = cited + [n for n in sources if n not in cited]
    best: tuple[float, int | None, str] = (0.0, None, "")
    for number in order:
        for window in _windows(sources[number]):
            coverage = len(terms & content_terms(window)) / len(terms)
            if coverage > best[0]:
                best = (coverage, number, window)
    coverage, found, window = best
    if found is None or coverage < min_coverage:
        return SentenceCheck(clean, False, found, coverage, "unsupported")
    if not numbers(clean) <= numbers(sources[found]):
        return SentenceCheck(clean, False, found, coverage, "number_mismatch")
    if _negation_flipped(clean, terms, window):
        return SentenceCheck(clean, False, found, coverage, "negation_mismatch")
    return SentenceCheck(clean, True, found, coverage, "supported")


def check_answer(text: str, sources: dict[int, str], *,
                 min_coverage: float = MIN_COVERAGE) -> list[SentenceCheck]:
    return [check_sentence(s, sources, min_coverage=min_coverage) for s in split_sentences(text)]
