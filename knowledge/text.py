"""Small bilingual text utilities for answer checking: sentences, content terms, numbers."""

from __future__ import annotations

import re

STOPWORDS = frozenset("""a an the and or but if then so of to in on at by for with from as is are
was were be been being it its this that these those i you he she we they me my your our their
do does did can could will would should may might must have has had not no yes please what
which who whom how when where why there here about into than too very just also any all some
such only own same other more most up down out over under again further once our ours yours
am get got let us""".split())
NEGATIONS = frozenset({"not", "no", "never", "cannot", "can't", "won't", "don't", "doesn't",
                       "isn't", "aren't", "without", "none", "nor"})
NEGATIONS_ZH = ("不", "没", "无法", "禁止", "未")
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\u3400-\u9fff])|(?<=[。！？])")
_CITATION = re.compile(r"\s*\[(\d+)\]")
_ABBREVIATION = re.compile(r"(?:\b[A-Z]\.[A-Z]\.|\b(?:Mr|Mrs|Ms|Dr|Prof|St|Mt|Jr|Sr|Inc|Ltd|Co|vs|"
                           r"No|e\.g|i\.e|approx|ca)\.)$")
_CN_DIGITS = {"一": "1", "二": "2", "两": "2", "三": "3", "四": "4", "五": "5", "六": "6",
              "七": "7", "八": "8", "九": "9", "十": "10"}


def stem(word: str) -> str:
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + keep
    return word


def content_terms(text: str) -> set[str]:
    """English content words (stemmed) and Chinese character bigrams (and single characters
    of one-character runs)."""
    lowered = text.lower()
    terms = {stem(w) for w in _WORD.findall(lowered) if w not in STOPWORDS and len(w) > 1}
    terms |= set(_NUMBER.findall(lowered))
    for run in _CJK_RUN.findall(text):
        if len(run) == 1:
            terms.add(run)
        terms.update(run[i:i + 2] for i in range(len(run) - 1))
    return terms


def numbers(text: str) -> set[str]:
    found = {n.replace(",", "") for n in _NUMBER.findall(text)}
    for match in re.finditer(r"([一二两三四五六七八九十])\s*(?:天|个月|年|小时|周)", text):
        found.add(_CN_DIGITS[match.group(1)])
    return found


def negated(text: str) -> bool:
    lowered = text.lower()
    return bool(NEGATIONS & set(_WORD.findall(lowered))) or any(n in text for n in NEGATIONS_ZH)


def negated_terms(text: str, window: int = 4) -> set[str]:
    """Content terms within a few words after a negation cue: what the negation applies to."""
    words = _WORD.findall(text.lower())
    scoped: set[str] = set()
    for i, word in enumerate(words):
        if word in NEGATIONS or word.endswith("n't"):
            scoped |= content_terms(" ".join(words[i + 1:i + 1 + window]))
    for cue in NEGATIONS_ZH:
        start = text.find(cue)
        while start >= 0:
            scoped |= content_terms(text[start + len(cue):start + len(cue) + window])
            start = text.find(cue, start + 1)
    return scoped


_CITED_END = re.compile(r"([.!?。！？])\s*((?:\[\d+\]\s*)+)")


def split_sentences(text: str) -> list[str]:
    """Sentences of English and Chinese text; a line break always ends one (headings).
    A citation after the full stop ("... food. [2] Next") stays with its sentence."""
    text = _CITED_END.sub(lambda m: f" {m.group(2).strip()}{m.group(1)} ", text)
    sentences: list[str] = []
    for line in text.strip().splitlines():
        for piece in _SENTENCE.split(line.strip()):
            if not piece or not piece.strip():
                continue
            if sentences and _ABBREVIATION.search(sentences[-1]) and \
                    sentences[-1] in line:  # "the U.S. Army", "Dr. Smith": not a sentence end
                sentences[-1] = f"{sentences[-1]} {piece.strip()}"
            else:
                sentences.append(piece.strip())
    return sentences


def citations_in(sentence: str) -> list[int]:
    return [int(n) for n in _CITATION.findall(sentence)]


def strip_citations(sentence: str) -> str:
    return _CITATION.sub("", sentence).strip()
