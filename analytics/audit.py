"""The answer audit: each knowledge answer with what the gate kept and dropped and how its
conversation ended; how often each article is cited and how those conversations went; and
the gate's calibration, read from what happened after it decided.

Everything here reads the fact tables (``analytics_answers``, ``analytics_conversations``)
and, for an agent's words, ``messages``. Customer text is returned to the analyst, never
logged.

Two rules shared with ``analytics.gaps``:
- an answer *led to* a hand-off when it is its conversation's last answer before the hand-off
  and the hand-off came within ``RIGHT_AFTER`` of it;
- the agent's reply to a hand-off is the first message with role ``agent`` at or after it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.models import AnswerFact, ConversationFact
from conversations.models import Message
from core.redact import redact
from knowledge.articles.models import Article

# The bot's hand-off is stored in the turn of the answer that caused it, a moment before or
# after the answer's own timestamp.
SAME_TURN = timedelta(seconds=5)
RIGHT_AFTER = timedelta(minutes=10)
EXAMPLES = 10
REPLY_CHARS = 1000
_CHUNK = 500  # ids per IN (...) list
SelectT = TypeVar("SelectT", bound="Select[*tuple[Any, ...]]")


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in UTC."""

    start: datetime
    end: datetime


# ------------------------------------------------------------------ shapes


class SourceRef(BaseModel):
    id: str
    title: str | None = None


class Outcome(BaseModel):
    handed_off: bool = False
    handoff_reason: str | None = None
    bot_resolved: bool = False
    reopened: bool = False
    csat: int | None = None
    csat_by: str | None = None


class AuditedAnswer(BaseModel):
    key: str
    conversation_id: str
    message_id: str | None
    at: datetime
    lang: str | None
    intent: str | None
    question: str
    abstained: bool
    abstain_reason: str | None
    sources: list[SourceRef]
    generator: str | None
    latency_ms: float | None
    stage_ms: dict[str, float]
    kept: list[str]
    dropped: list[str]
    top_score: float | None
    outcome: Outcome | None


class AuditedAnswers(BaseModel):
    items: list[AuditedAnswer]
    total: int
    page: int
    per_page: int


class ArticleStats(BaseModel):
    id: str
    title: str | None
    citations: int  # answers that cite it
    conversations: int  # conversations with at least one of those answers
    handoff_rate: float | None
    csat: float | None  # mean rating of those conversations that were rated
    rated: int


class ArticlesStats(BaseModel):
    items: list[ArticleStats]


class CalibrationExample(BaseModel):
    key: str
    conversation_id: str
    at: datetime
    question: str
    top_score: float | None
    abstain_reason: str | None = None
    kept: list[str] = []
    sources: list[str] = []
    agent_reply: str | None = None


class CalibrationCell(BaseModel):
    count: int
    conversations: int
    rate: float | None  # of all abstentions / of all answers in the window
    examples: list[CalibrationExample]


class GateCalibration(BaseModel):
    abstained: int
    answered: int
    abstained_then_agent_answered: CalibrationCell
    answered_then_customer_asked_for_person: CalibrationCell


# ------------------------------------------------------------------ shared reads


def in_window(stmt: SelectT, window: Window, lang: str | None) -> SelectT:
    stmt = stmt.where(AnswerFact.at >= window.start, AnswerFact.at < window.end)
    return stmt.where(AnswerFact.language == lang) if lang else stmt


def _chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    listed = sorted(set(ids))
    for start in range(0, len(listed), _CHUNK):
        yield listed[start:start + _CHUNK]


async def conversations(session: AsyncSession,
                        ids: Iterable[str]) -> dict[str, ConversationFact]:
    found: dict[str, ConversationFact] = {}
    for chunk in _chunks(ids):
        rows = await session.execute(select(ConversationFact)
                                     .where(ConversationFact.conversation_id.in_(chunk)))
        found.update({c.conversation_id: c for c in rows.scalars()})
    return found


async def titles(session: AsyncSession, ids: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in _chunks(ids):
        rows = await session.execute(select(Article.id, Article.title)
                                     .where(Article.id.in_(chunk)))
        found.update({row.id: row.title for row in rows})
    return found


def handed_off_after(at: datetime, conversation: ConversationFact | None) -> bool:
    """The conversation was handed to a person after (or in the turn of) this answer."""
    return (conversation is not None and bool(conversation.handed_off)
            and conversation.handed_off_at is not None
            and conversation.handed_off_at >= at - SAME_TURN)


def led_to_handoff(answers: Sequence[Any],
                   convs: dict[str, ConversationFact]) -> set[str]:
    """Keys of the answers that were their conversation's last before a hand-off that came
    within ``RIGHT_AFTER``. ``answers``: rows with ``key``, ``conversation_id`` and ``at``."""
    last: dict[str, Any] = {}
    for answer in answers:
        conversation = convs.get(answer.conversation_id)
        if not handed_off_after(answer.at, conversation):
            continue
        assert conversation is not None and conversation.handed_off_at is not None
        if conversation.handed_off_at - answer.at > RIGHT_AFTER:
            continue
        kept = last.get(answer.conversation_id)
        if kept is None or (answer.at, answer.key) > (kept.at, kept.key):
            last[answer.conversation_id] = answer
    return {a.key for a in last.values()}


async def agent_replies(session: AsyncSession,
                        convs: Iterable[ConversationFact]) -> dict[str, str]:
    """Conversation id → the first agent message at or after its hand-off."""
    since = {c.conversation_id: c.handed_off_at for c in convs
             if c.handed_off and c.handed_off_at is not None}
    replies: dict[str, str] = {}
    for chunk in _chunks(since):
        rows = await session.execute(
            select(Message.conversation_id, Message.text, Message.created_at, Message.data)
            .where(Message.conversation_id.in_(chunk), Message.role == "agent")
            .order_by(Message.seq))
        for row in rows:
            handed = since[row.conversation_id]
            if (row.conversation_id not in replies and handed is not None
                    and row.created_at >= handed and not row.data.system and row.text.strip()):
                replies[row.conversation_id] = row.text[:REPLY_CHARS]
    return replies


def outcome(conversation: ConversationFact | None) -> Outcome | None:
    if conversation is None:
        return None
    return Outcome(handed_off=bool(conversation.handed_off),
                   handoff_reason=conversation.handoff_reason,
                   bot_resolved=bool(conversation.bot_resolved),
                   reopened=bool(conversation.reopened), csat=conversation.csat,
                   csat_by=conversation.csat_by)


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


# ------------------------------------------------------------------ the audit


async def answers_page(session: AsyncSession, *, window: Window, lang: str | None = None,
                       abstained: bool | None = None, page: int = 1,
                       per_page: int = 25) -> AuditedAnswers:
    """Newest first."""
    stmt = in_window(select(AnswerFact), window, lang)
    if abstained is not None:
        stmt = stmt.where(AnswerFact.abstained.is_(abstained))
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))
             ).scalar_one()
    rows = list((await session.execute(
        stmt.order_by(AnswerFact.at.desc(), AnswerFact.id.desc())
        .limit(per_page).offset((page - 1) * per_page))).scalars())
    convs = await conversations(session, (a.conversation_id for a in rows))
    named = await titles(session, (s for a in rows for s in _strings(a.sources)))
    items = [AuditedAnswer(
        key=str(a.key), conversation_id=a.conversation_id, message_id=a.message_id, at=a.at,
        lang=a.language, intent=a.intent, question=a.question or "",
        abstained=bool(a.abstained), abstain_reason=a.abstain_reason,
        sources=[SourceRef(id=s, title=named.get(s)) for s in _strings(a.sources)],
        generator=a.generator, latency_ms=a.latency_ms, stage_ms=dict(a.stage_ms or {}),
        kept=_strings(a.kept), dropped=_strings(a.dropped), top_score=a.top_score,
        outcome=outcome(convs.get(a.conversation_id))) for a in rows]
    return AuditedAnswers(items=items, total=total, page=page, per_page=per_page)


async def article_stats(session: AsyncSession, *, window: Window,
                        lang: str | None = None) -> ArticlesStats:
    """Every source cited in the window, most cited first."""
    rows = (await session.execute(in_window(
        select(AnswerFact.conversation_id, AnswerFact.sources)
        .where(AnswerFact.abstained.is_(False)), window, lang))).all()
    cited: dict[str, int] = defaultdict(int)
    cited_in: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        for source in dict.fromkeys(_strings(row.sources)):
            cited[source] += 1
            cited_in[source].add(row.conversation_id)
    convs = await conversations(session, (c for ids in cited_in.values() for c in ids))
    named = await titles(session, cited)
    items = []
    for source, count in sorted(cited.items(), key=lambda item: (-item[1], item[0])):
        known = [convs[c] for c in cited_in[source] if c in convs]
        ratings = [c.csat for c in known if c.csat is not None]
        items.append(ArticleStats(
            id=source, title=named.get(source), citations=count,
            conversations=len(cited_in[source]),
            handoff_rate=(round(sum(bool(c.handed_off) for c in known) / len(known), 4)
                          if known else None),
            csat=round(sum(ratings) / len(ratings), 3) if ratings else None,
            rated=len(ratings)))
    return ArticlesStats(items=items)


async def gate_calibration(session: AsyncSession, *, window: Window, lang: str | None = None,
                           examples: int = EXAMPLES) -> GateCalibration:
    """Abstentions a person then answered (the gate was perhaps too strict) against answers
    after which the customer asked for a person (perhaps too lenient)."""
    rows = list((await session.execute(in_window(select(AnswerFact), window, lang)
                                       .order_by(AnswerFact.at.desc(),
                                                 AnswerFact.id.desc()))).scalars())
    convs = await conversations(session, (a.conversation_id for a in rows))
    strict = [a for a in rows if a.abstained and handed_off_after(a.at, convs.get(
        a.conversation_id)) and convs[a.conversation_id].first_agent_reply_at is not None]
    before = led_to_handoff([a for a in rows if not a.abstained], convs)
    lenient = [a for a in rows if a.key in before
               and convs[a.conversation_id].handoff_reason == "customer_request"]
    replies = await agent_replies(session, (convs[a.conversation_id]
                                            for a in strict[:examples]))
    abstained = sum(bool(a.abstained) for a in rows)
    answered = len(rows) - abstained

    def cell(found: list[AnswerFact], out_of: int) -> CalibrationCell:
        return CalibrationCell(
            count=len(found), conversations=len({a.conversation_id for a in found}),
            rate=round(len(found) / out_of, 4) if out_of else None,
            examples=[CalibrationExample(
                key=str(a.key), conversation_id=a.conversation_id, at=a.at,
                question=a.question or "", top_score=a.top_score,
                abstain_reason=a.abstain_reason, kept=_strings(a.kept),
                sources=_strings(a.sources),
                agent_reply=_redacted(replies.get(a.conversation_id)))
                for a in found[:examples]])

    return GateCalibration(abstained=abstained, answered=answered,
                           abstained_then_agent_answered=cell(strict, abstained),
                           answered_then_customer_asked_for_person=cell(lenient, answered))


def _redacted(text: str | None) -> str | None:
    return None if text is None else redact(text)
