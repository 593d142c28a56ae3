"""Choosing what answers the question: the FAQ row that was asked, or the passage that answers
the question's type, taken from the sources retrieval ranked; or nothing.

The answer is quoted from the sources, so it is always supported; this module decides whether
it answers *this* question, which a supported sentence about a neighbouring question does not:

- A FAQ row is matched on its own question and answered with its own answer (trimmed at a
  sentence end when long), never with a neighbour's sentences.
- Otherwise every sentence of the sources is scored by how much of the question it covers,
  each question term weighted by how rare it is among the candidates (a term every sentence
  has says little), with the sentences around it counting for half, plus whether it has what
  the question's type asks for (a number for "how much / 多少", a time for "when / 什么时候"),
  plus the source's rank. The best sentence is the answer; the next sentence of the same
  source joins it only when the question's type is not met without it.
- It abstains when the best sentence leaves too much of the question uncovered, or when the
  question names a number or a year that its passage never states: a question written to
  look answerable from a passage usually changes one such term.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from knowledge.text import content_terms, numbers, split_sentences

if TYPE_CHECKING:
    from knowledge.documents.protocol import Chunk
    from knowledge.embeddings import SentenceVectors

logger = logging.getLogger(__name__)

MIN_COVERAGE = 0.4   # share of the question's (rarity-weighted) terms the answer must cover
MIN_MEANING = 0.84   # ... unless its meaning is this close to the question's (e5 cosine)
MEANING_WEIGHT = 3.0  # e5 cosines of related sentences differ by only a few hundredths
MEANING_BASE = 0.8
MIN_OVERLAP = 0.1    # closeness in meaning counts only with some of the question's terms
PREFER_TOP = 0.05    # the best-ranked source's sentence wins unless another is this much better
FAQ_MATCH = 0.6      # a FAQ row's question must cover this much of the asked question
CONTEXT_WEIGHT = 0.5
TYPE_BONUS = 0.15
RANK_PRIOR = 0.1
MAX_FAQ_CHARS = 400
_CJK = re.compile(r"[\u3400-\u9fff]")
_TIME_WORDS = re.compile(
    r"\b(january|february|march|april|may|june|july|august|september|october|november|"
    r"december|century|centuries|year|years|decade|day|days|week|weeks|month|months|hour|"
    r"hours|minute|minutes|monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    r"spring|summer|autumn|winter|ago|since|until|during|before|after)\b|\d|[年月日时周天]")
_NUMBER_WORDS = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|thousand|million|billion|dozen|half|several|few|many)\b|"
    r"[一二两三四五六七八九十百千万亿半]")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+")
QUESTION_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("number", re.compile(r"\bhow (many|much|long|far|old|big|large|often|tall|high|fast)\b|"
                          r"\bwhat (percentage|percent|number|amount|fraction|proportion)\b|"
                          r"多少|几|多久|多长|多大|多远|多高|多重|比例")),
    ("time", re.compile(r"\bwhen\b|\bwhat (year|century|decade|date|day|month|time|period)\b|"
                        r"\bwhich (year|century|decade|date|day|month)\b|什么时候|何时|哪一?年|"
                        r"哪个?时期|哪一?天|几月|几点")),
    ("person", re.compile(r"\bwho(m|se)?\b|谁")),
    ("place", re.compile(r"\bwhere\b|哪里|哪儿|在哪|什么地方|哪个(国家|城市|地区)")),
)


# Words that frame a question rather than say what it is about.
FRAME_WORDS = frozenset("""mean tell know explain want need like possible able way please
kindly anyone someone thing something happen there take tak""".split())
FRAME_ZH = re.compile(r"请问|给我|帮我|告诉我|我想|我要|能不能|可不可以|可以吗|是不是|是否|能否|"
                      r"还能|怎么样|怎么|怎样|如何|为什么|什么|哪些|哪个|哪里|哪儿|多少|多久|"
                      r"多长|几|吗|呢|吧|呀|啊")
CHAR_STOP = frozenset("的了吗呢吧啊呀是在和与及或也都就还能会要我你他她它们这那有个把被给对从到")


def terms_of(text: str) -> set[str]:
    """Content terms (``knowledge.text.content_terms``) and, for Chinese, single characters
    too: bigrams alone miss paraphrases such as 拆开 / 拆封."""
    return content_terms(text) | {c for c in _CJK.findall(text) if c not in CHAR_STOP}


def question_terms(question: str) -> set[str]:
    """What the question is about: its terms without the words that frame it ("how long",
    "what does … mean", 请问, 多久, 吗)."""
    core = question.lower()
    for _, pattern in QUESTION_TYPES:
        core = pattern.sub(" ", core)
    core = FRAME_ZH.sub(" ", core)
    return {t for t in terms_of(core) if t not in FRAME_WORDS}


@dataclass(frozen=True)
class Passage:
    """A retrieved source as composition sees it (``number`` is its citation number)."""

    number: int
    title: str
    text: str
    faq: bool = False  # a FAQ row: ``title`` is its question, ``text`` its answer


@dataclass(frozen=True)
class Composed:
    sentences: list[tuple[int, str]]  # (source number, sentence), in answer order
    coverage: float                   # how much of the question the answer covers, 0..1
    reason: str                       # faq | passage | not_covered | number_missing | empty


def question_type(question: str) -> str | None:
    lowered = question.lower()
    for name, pattern in QUESTION_TYPES:
        if pattern.search(lowered):
            return name
    return None


def has_type(kind: str | None, sentence: str) -> bool | None:
    """Whether ``sentence`` holds what a ``kind`` question asks for (None: no expectation)."""
    if kind == "number":
        return bool(_NUMBER_WORDS.search(sentence.lower()))
    if kind == "time":
        return bool(_TIME_WORDS.search(sentence.lower()))
    if kind in ("person", "place"):
        return bool(_NAME.search(sentence)) or bool(_CJK.search(sentence))
    return None


def _weights(question_terms: set[str], candidates: Sequence[set[str]]) -> dict[str, float]:
    """Inverse document frequency of each question term among the candidate sentences."""
    df = Counter(t for terms in candidates for t in terms & question_terms)
    n = len(candidates) + 1
    # A term no candidate has counts as if one had it: it may be a paraphrase, not the point.
    return {t: math.log(1 + n / (0.5 + max(df[t], 1))) for t in question_terms}


def _coverage(weights: dict[str, float], terms: set[str], context: set[str]) -> float:
    total = sum(weights.values()) or 1.0
    inside = sum(w for t, w in weights.items() if t in terms)
    around = sum(w for t, w in weights.items() if t in context and t not in terms)
    return (inside + CONTEXT_WEIGHT * around) / total


def _trim(text: str, limit: int = MAX_FAQ_CHARS) -> str:
    if len(text) <= limit:
        return text
    kept = ""
    for sentence in split_sentences(text):
        if kept and len(kept) + len(sentence) + 1 > limit:
            break
        kept = f"{kept} {sentence}".strip() if not _CJK.search(sentence) else kept + sentence
    return kept or text[:limit]


Similarity = Callable[[list[str]], Sequence[float]]
"""Cosine similarity of each sentence to the question (embeddings), in the given order."""


# What the learned scorer (``knowledge.reader``) sees of each candidate sentence, in order.
FEATURES: tuple[str, ...] = (
    "score", "score_gap", "cover", "cover_gap", "inside", "around", "close", "close_gap",
    "fits", "misfits", "typed", "rank_prior", "top_source", "source_score", "position_first",
    "relative_position", "length", "passage_cover", "number_missing", "chinese",
    "question_terms", "candidates")


class Scorer(Protocol):
    """A learned judge of candidate sentences: the probability that each answers the question
    (rows of ``FEATURES``), and the least probability worth sending."""

    threshold: float

    def probabilities(self, rows: Sequence[Sequence[float]]) -> Sequence[float]: ...


@dataclass(frozen=True)
class Candidate:
    """A sentence of a source that could answer the question, with what the scores saw."""

    number: int      # its source's citation number
    position: int    # its index among its source's sentences
    sentence: str
    rank: int        # its source's rank, 0 first
    score: float     # the hand-set score (coverage, meaning, type, rank)
    cover: float
    close: float
    features: tuple[float, ...]


def candidates(question: str, passages: Sequence[Passage], *,
               similarity: Similarity | None = None,
               scores: Sequence[float] = ()) -> list[Candidate]:
    """Every sentence of the (non-FAQ) ``passages`` that could answer ``question``, best first
    by the hand-set score; ``scores`` are the passages' retrieval scores, when known."""
    wanted = question_terms(question)
    if not wanted:
        return []
    kind = question_type(question)
    rows = _rows(passages)
    weights = _weights(wanted, [r[4] for r in rows]
                       + [terms_of(p.title) for p in passages if p.faq])
    meaning = list(similarity([r[3] for r in rows])) if similarity and rows else [0.0] * len(rows)
    asked_numbers = numbers(question)
    texts = {p.number: p.text for p in passages}
    missing = {n: float(bool(asked_numbers) and not asked_numbers <= numbers(t))
               for n, t in texts.items()}
    passage_cover = {p.number: _coverage(weights, terms_of(f"{p.title} {p.text}"), set())
                     for p in passages}
    counts = Counter(r[1] for r in rows)
    base: list[tuple[float, float, float, float, bool | None, tuple[int, int, int, str]]] = []
    for (rank, number, position, sentence, terms, context), close in zip(rows, meaning,
                                                                           strict=True):
        cover = _coverage(weights, terms, context)
        fits = has_type(kind, sentence)
        bonus = 0.0 if fits is None else (TYPE_BONUS if fits else -TYPE_BONUS)
        sense = MEANING_WEIGHT * (close - MEANING_BASE) if similarity else 0.0
        score = cover + sense + bonus + RANK_PRIOR / (1 + rank)
        base.append((score, cover, _coverage(weights, terms, set()), close, fits,
                     (rank, number, position, sentence)))
    if not base:
        return []
    best_score = max(b[0] for b in base)
    best_cover = max(b[1] for b in base)
    best_close = max(b[3] for b in base)
    chinese = float(bool(_CJK.search(question)))
    out = []
    for score, cover, inside, close, fit, (rank, number, position, sentence) in base:
        features = (
            score, score - best_score, cover, cover - best_cover, inside, cover - inside, close,
            close - best_close, float(fit is True), float(fit is False),
            float(kind is not None), 1 / (1 + rank), float(rank == 0),
            float(scores[rank]) if rank < len(scores) else 0.0, float(position == 0),
            position / max(counts[number] - 1, 1), math.log1p(len(content_terms(sentence))),
            passage_cover[number], missing[number], chinese, math.log1p(len(wanted)),
            math.log1p(len(base)))
        out.append(Candidate(number, position, sentence, rank, score, cover, close, features))
    out.sort(key=lambda c: c.score, reverse=True)
    return out


def candidate_sentences(passages: Sequence[Passage]) -> list[str]:
    """The sentences ``candidates`` weighs by meaning, whatever the question."""
    return [row[3] for row in _rows(passages)]


def prepare_sentences(chunks: Sequence[Chunk], vectors: SentenceVectors) -> int:
    """Embed now what answers will need of ``chunks``: the injection detector's vectors of
    their sentences (``without_instructions`` takes them from the process's
    ``sentence_vectors``) and the candidate sentences of what it leaves, into ``vectors`` and
    so into its cache. An import calls this; a question then embeds only itself. Returns how
    many candidate sentences there were. Never raises: it is an optimisation (answers embed
    what is missing), and the import that calls it has written its chunks already."""
    from knowledge.safety import without_instructions

    try:
        wanted: list[str] = []
        for chunk in chunks:
            text, _removed = without_instructions(chunk.text)
            wanted += candidate_sentences([Passage(1, chunk.title, text, "faq" in chunk.tags)])
        vectors.embed(wanted)
    except Exception:
        logger.exception("sentence vectors of %d chunks not prepared", len(chunks))
        return 0
    return len(wanted)


def _rows(passages: Sequence[Passage]) -> list[tuple[int, int, int, str, set[str], set[str]]]:
    """Every candidate sentence of the non-FAQ passages: (rank, source number, position,
    sentence, its terms, the terms around it: the title and the neighbouring sentences)."""
    rows: list[tuple[int, int, int, str, set[str], set[str]]] = []
    for rank, passage in enumerate(passages):
        if passage.faq:
            continue
        sentences = [s for s in split_sentences(passage.text) if not s.rstrip().endswith(
            ("?", "？", ":", "："))]
        sentence_terms = [terms_of(s) for s in sentences]
        title_terms = terms_of(passage.title)
        for i, sentence in enumerate(sentences):
            if len(content_terms(sentence)) < 2:
                continue
            around = set(title_terms)
            if i > 0:
                around |= sentence_terms[i - 1]
            if i + 1 < len(sentences):
                around |= sentence_terms[i + 1]
            rows.append((rank, passage.number, i, sentence, sentence_terms[i], around))
    return rows


def compose(question: str, passages: Sequence[Passage], *,
            similarity: Similarity | None = None,
            min_coverage: float = MIN_COVERAGE, scorer: Scorer | None = None,
            scores: Sequence[float] = ()) -> Composed:
    """``scorer``: a learned judge of the candidates (``knowledge.reader``); without one, the
    hand-set score chooses and the coverage and number rules decide whether to abstain."""
    wanted = question_terms(question)
    if not wanted or not passages:
        return Composed([], 0.0, "empty")
    kind = question_type(question)
    found = candidates(question, passages, similarity=similarity, scores=scores)
    faq_rows = [(rank, p) for rank, p in enumerate(passages) if p.faq]
    weights = _weights(wanted, [terms_of(c.sentence) for c in found]
                       + [terms_of(p.title) for _, p in faq_rows])

    # A FAQ row whose own question is the one asked answers it with its own answer.
    best_faq: tuple[float, Passage] | None = None
    for rank, passage in faq_rows:
        asked = question_terms(passage.title)
        cover = _coverage(weights, asked, set())
        # The row's question must not be about much more than the asked one either.
        extra = len(asked - wanted) / max(len(asked), 1)
        score = cover - 0.3 * extra + RANK_PRIOR / (1 + rank)
        if cover >= FAQ_MATCH and (best_faq is None or score > best_faq[0]):
            best_faq = (score, passage)

    if best_faq is not None and (not found or best_faq[0] >= found[0].score):
        passage = best_faq[1]
        return Composed([(passage.number, _trim(passage.text))], 1.0, "faq")
    if not found:
        return Composed([], 0.0, "empty")
    if scorer is not None:
        return _judged(kind, found, scorer)
    top = min(c.rank for c in found)
    best_top = next(c for c in found if c.rank == top)
    # Two sources that disagree (an edited article, an older policy) are settled by rank.
    chosen = best_top if found[0].score - best_top.score <= PREFER_TOP else found[0]
    cover = chosen.cover
    if cover < min_coverage and not (similarity and chosen.close >= MIN_MEANING
                                     and cover >= MIN_OVERLAP):
        return Composed([], cover, "not_covered")
    passage_text = next(p.text for p in passages if p.number == chosen.number)
    asked = numbers(question)  # years are numbers too
    if asked and not asked <= numbers(passage_text):
        return Composed([], cover, "number_missing")
    return Composed(_with_next(kind, chosen, found), cover, "passage")


def _judged(kind: str | None, found: list[Candidate], scorer: Scorer) -> Composed:
    """The candidate the learned scorer rates most likely to answer, if it is likely enough."""
    probabilities = list(scorer.probabilities([c.features for c in found]))
    best = max(range(len(found)), key=lambda i: probabilities[i])
    chosen = found[best]
    if probabilities[best] < scorer.threshold:
        return Composed([], chosen.cover, "not_likely")
    return Composed(_with_next(kind, chosen, found), chosen.cover, "passage")


def _with_next(kind: str | None, chosen: Candidate,
               found: list[Candidate]) -> list[tuple[int, str]]:
    answer = [(chosen.number, chosen.sentence)]
    if has_type(kind, chosen.sentence) is False:
        # The type the question asks for may be in the next sentence of the same passage.
        following = [c for c in found
                     if c.number == chosen.number and c.position == chosen.position + 1]
        if following and has_type(kind, following[0].sentence):
            answer.append((chosen.number, following[0].sentence))
    return answer
