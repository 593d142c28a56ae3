"""The fold: outbox events after the cursor → facts and hourly rollups, in one transaction.

- **One folder at a time.** The cursor row is read ``FOR UPDATE`` (PostgreSQL); on SQLite
  every transaction begins IMMEDIATE (``core.db``), so the fold holds the write lock from its
  first read. A second folder waits and then finds the cursor moved on.
- **Exactly once per event.** Events are applied in id order and the cursor advances in the
  same transaction as the facts; the outbox key is unique, so a duplicate was never stored.
- **Rollups stay equal to the facts.** Each fact's contribution to ``analytics_hourly``
  (``contributions``) and to the first-response and resolution histograms of
  ``analytics_hourly_latency`` (``latency_contributions``) is taken before and after its events
  are applied and the difference is added, so a change of outcome (a reopened resolution, a
  language learnt from the first message) moves counts instead of adding them twice. A parse
  only adds: to ``analytics_hourly_parses`` and to the ``turn_ms`` histogram, in its
  conversation's hour and language (settled by the first parse, before it is counted).
- **Gaps.** PostgreSQL hands out ids before commit, so a transaction still open can commit an
  id lower than one already visible. The fold stops before a gap in the ids until the event
  after it is ``GAP_GRACE_S`` old, then treats the gap as a rolled-back transaction. SQLite
  commits in id order (writers are serialised) and leaves no gaps.

Attribution: hand-off wins over a bot resolution; a resolution reopened within
``Settings.analytics_reopen_days`` does not count (until the conversation is resolved again);
a rating is the human's when someone claimed the conversation, else the bot's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics import histogram
from analytics.models import (
    AnswerFact,
    ConversationFact,
    FoldCursor,
    HourlyLatency,
    HourlyParses,
    HourlyRollup,
    ParseFact,
)
from core.db import Base, utcnow
from core.outbox import OutboxEvent
from core.redact import redact

logger = logging.getLogger(__name__)

BATCH = 5000
GAP_GRACE_S = 30.0
LOW_CONFIDENCE = 0.5  # a parse under this (or the fallback intent) counts as low confidence
RollupKey = tuple[datetime, str, str, str]  # hour, language, metric, dimension
Contribution = dict[RollupKey, tuple[int, float]]
LatencyKey = tuple[datetime, str, str, int]  # hour, language, stage, bucket
ParsesKey = tuple[datetime, str, str, str, bool]  # hour, language, intent, version, canary


def _short(value: Any, length: int = 64) -> str | None:
    """A value for a bounded text column: an odd payload must never stop the fold."""
    return None if value is None else str(value)[:length]


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def contributions(fact: ConversationFact) -> Contribution:
    """What one conversation adds to the hourly rollups: (count, sum) per key, all in the
    hour it was opened (its cohort)."""
    hour, lang = hour_of(fact.opened_at), fact.language
    out: Contribution = {(hour, lang, "conversations", ""): (1, 0.0)}

    def add(metric: str, dimension: str = "", count: int = 1, total: float = 0.0) -> None:
        out[(hour, lang, metric, dimension)] = (count, total)

    if fact.handed_off:
        add("handed_off")
        add("handoff_reason", fact.handoff_reason or "unknown")
    if fact.bot_resolved:
        add("bot_resolved")
    if fact.resolved_at is not None:
        add("resolved")
    if fact.reopened:
        add("reopened")
    if fact.answers:
        add("answers", count=fact.answers)
    if fact.abstentions:
        add("abstained", count=fact.abstentions)
    if fact.csat is not None:
        add("csat", fact.csat_by or "bot", 1, float(fact.csat))
    return out


def latency_contributions(fact: ConversationFact) -> dict[LatencyKey, int]:
    """What one conversation adds to the first-response and resolution histograms (the same
    values the summary reads from the facts: a first response, a standing resolution)."""
    hour, lang = hour_of(fact.opened_at), fact.language
    out: dict[LatencyKey, int] = {}
    values = (("first_response_s", fact.first_response_s),
              ("resolution_s", fact.resolution_s if fact.resolved_at is not None else None))
    for stage, value in values:
        index = histogram.bucket(value)
        if index is not None:
            out[(hour, lang, stage, index)] = 1
    return out


def parse_contributions(fact: ConversationFact, parse: ParseFact) -> tuple[
        ParsesKey, tuple[int, int, int], LatencyKey | None]:
    """What one parse adds: its row of ``analytics_hourly_parses`` (parses, low confidence,
    fallback) and its turn's ``turn_ms`` bucket, in its conversation's hour and language."""
    hour, lang = hour_of(fact.opened_at), fact.language
    key = (hour, lang, parse.intent or "", parse.nlu_version or "", bool(parse.canary))
    index = histogram.bucket(parse.turn_ms)
    turn = None if index is None else (hour, lang, "turn_ms", index)
    return key, (1, int(bool(parse.low_confidence)), int(bool(parse.fallback))), turn


@dataclass
class Deltas:
    """What a batch adds to ``analytics_hourly_parses`` and ``analytics_hourly_latency``:
    each parse, then each conversation's change of first response and resolution."""

    parses: dict[ParsesKey, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    latency: dict[LatencyKey, int] = field(default_factory=lambda: defaultdict(int))

    def add_parse(self, fact: ConversationFact, parse: ParseFact) -> None:
        key, values, turn = parse_contributions(fact, parse)
        cell = self.parses[key]
        for i, value in enumerate(values):
            cell[i] += value
        if turn is not None:
            self.latency[turn] += 1


async def _cursor(session: AsyncSession) -> FoldCursor:
    cursor = (await session.execute(select(FoldCursor).where(FoldCursor.id == 1)
                                    .with_for_update())).scalar_one_or_none()
    if cursor is None:  # the migration creates it; a database built from the models may not
        cursor = FoldCursor(id=1, last_event_id=0)
        session.add(cursor)
        await session.flush()
    return cursor


def _contiguous(events: list[OutboxEvent], last_id: int, now: datetime) -> list[OutboxEvent]:
    taken, expected = [], last_id + 1
    for event in events:
        if event.id != expected and event.at > now - timedelta(seconds=GAP_GRACE_S):
            break  # an earlier id may still be committed: wait for it
        taken.append(event)
        expected = event.id + 1
    return taken


async def fold_once(session: AsyncSession, *, reopen_days: int, batch: int = BATCH,
                    now: datetime | None = None) -> int:
    """Fold up to ``batch`` events after the cursor (caller commits). Returns how many."""
    cursor = await _cursor(session)
    rows = list((await session.execute(
        select(OutboxEvent).where(OutboxEvent.id > cursor.last_event_id)
        .order_by(OutboxEvent.id).limit(batch))).scalars())
    events = _contiguous(rows, cursor.last_event_id, now or utcnow())
    if not events:
        return 0
    ids = {event.conversation_id for event in events}
    facts = {fact.conversation_id: fact for fact in (await session.execute(
        select(ConversationFact).where(ConversationFact.conversation_id.in_(ids)))).scalars()}
    before = {cid: contributions(fact) for cid, fact in facts.items()}
    latency_before = {cid: latency_contributions(fact) for cid, fact in facts.items()}
    window = timedelta(days=reopen_days)
    deltas = Deltas()
    for event in events:
        _apply(session, event, facts, window, deltas)
    delta: dict[RollupKey, list[float]] = defaultdict(lambda: [0, 0.0])
    for cid, fact in facts.items():
        for sign, contribution in ((-1, before.get(cid, {})), (1, contributions(fact))):
            for key, (count, total) in contribution.items():
                delta[key][0] += sign * count
                delta[key][1] += sign * total
        for sign, latency in ((-1, latency_before.get(cid, {})),
                              (1, latency_contributions(fact))):
            for bucket_key, count in latency.items():
                deltas.latency[bucket_key] += sign * count
    await _add_to_rollups(session, {k: (int(c), s) for k, (c, s) in delta.items()
                                    if c or s})
    await _upsert_sums(session, HourlyParses, [
        {"hour": hour, "language": lang, "intent": intent, "nlu_version": version,
         "canary": canary, "parses": n, "low_confidence": low, "fallback": fallback}
        for (hour, lang, intent, version, canary), (n, low, fallback)
        in deltas.parses.items()])
    await _upsert_sums(session, HourlyLatency, [
        {"hour": hour, "language": lang, "stage": stage, "bucket": index, "count": n}
        for (hour, lang, stage, index), n in deltas.latency.items() if n])
    cursor.last_event_id = events[-1].id
    cursor.updated_at = utcnow()
    return len(events)


def _apply(session: AsyncSession, event: OutboxEvent, facts: dict[str, ConversationFact],
           window: timedelta, deltas: Deltas) -> None:
    payload: dict[str, Any] = event.payload or {}
    fact = facts.get(event.conversation_id)
    if event.kind == "conversation.opened":
        if fact is None:
            fact = ConversationFact(conversation_id=event.conversation_id, opened_at=event.at,
                                    language=_short(event.language, 16) or "en", turns=0,
                                    messages=0,
                                    answers=0, abstentions=0, handed_off=False,
                                    bot_resolved=False, reopened=False)
            session.add(fact)
            facts[event.conversation_id] = fact
        return
    if fact is None:  # opened before analytics existed: no cohort to count it in
        return
    kind = event.kind
    if kind == "message":
        if not payload.get("system"):
            fact.messages += 1
    elif kind == "nlu.parse":
        if fact.turns == 0 and event.language:
            fact.language = _short(event.language, 16) or fact.language  # the customer's
        deltas.add_parse(fact, _parse(session, event, payload))
        fact.turns += 1
    elif kind == "answer":
        _answer(session, event, payload)
        fact.answers += 1
        fact.abstentions += bool(payload.get("abstained"))
    elif kind == "handoff" and not fact.handed_off:
        fact.handed_off, fact.handed_off_at = True, event.at
        fact.handoff_reason = _short(payload.get("reason") or "unknown")
    elif kind == "assigned":
        fact.agent_id = payload.get("agent_id")
    elif kind == "agent.first_reply" and fact.first_agent_reply_at is None:
        fact.first_agent_reply_at = event.at
        fact.first_response_s = histogram.number(payload.get("first_response_s"))
    elif kind == "resolved":
        fact.resolved_at = event.at
        fact.resolved_by = "bot" if payload.get("by") == "bot" else "agent"
        fact.resolution_s = (event.at - (fact.handed_off_at or fact.opened_at)).total_seconds()
    elif kind == "reopened" and fact.resolved_at is not None:
        if event.at - fact.resolved_at <= window:
            fact.reopened = True
            fact.resolved_at = fact.resolved_by = fact.resolution_s = None
    elif kind == "csat":
        fact.csat = payload.get("score")
        human = bool(payload.get("human")) or fact.agent_id is not None
        fact.csat_by = "human" if human else "bot"
    fact.bot_resolved = (fact.resolved_at is not None and fact.resolved_by == "bot"
                         and not fact.handed_off)


def _parse(session: AsyncSession, event: OutboxEvent, payload: dict[str, Any]) -> ParseFact:
    confidence = histogram.number(payload.get("confidence"))
    fallback = bool(payload.get("fallback"))
    parse = ParseFact(
        key=event.key, conversation_id=event.conversation_id, at=event.at,
        language=_short(event.language, 16), intent=_short(payload.get("intent")),
        confidence=confidence, nlu_version=_short(payload.get("nlu_version")),
        canary=bool(payload.get("canary")),
        fallback=fallback, turn_ms=histogram.number(payload.get("turn_ms")),
        low_confidence=fallback or (confidence is not None and confidence < LOW_CONFIDENCE))
    session.add(parse)
    return parse


def _answer(session: AsyncSession, event: OutboxEvent, payload: dict[str, Any]) -> None:
    found = payload.get("audit")
    audit: dict[str, Any] = found if isinstance(found, dict) else {}
    session.add(AnswerFact(
        key=event.key, conversation_id=event.conversation_id,
        message_id=_short(payload.get("message_id"), 32) or "", at=event.at,
        language=_short(event.language, 16), intent=_short(payload.get("intent")),
        question=redact(str(payload.get("question") or "")),
        abstained=bool(payload.get("abstained")),
        abstain_reason=_short(payload.get("abstain_reason")),
        sources=list(payload.get("sources") or []),
        generator=_short(audit.get("generator") or payload.get("generator")),
        latency_ms=audit.get("latency_ms"), stage_ms=audit.get("stage_ms") or {},
        kept=audit.get("kept") or [], dropped=audit.get("dropped") or [],
        top_score=audit.get("top_score")))


async def _add_to_rollups(session: AsyncSession,
                          delta: dict[RollupKey, tuple[int, float]]) -> None:
    if not delta:
        return
    keys = list(delta)
    existing: dict[RollupKey, HourlyRollup] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        rows = (await session.execute(select(HourlyRollup).where(tuple_(
            HourlyRollup.hour, HourlyRollup.language, HourlyRollup.metric,
            HourlyRollup.dimension).in_(chunk)))).scalars()
        existing.update({(r.hour, r.language, r.metric, r.dimension): r for r in rows})
    for key, (count, total) in delta.items():
        row = existing.get(key)
        if row is None:
            hour, language, metric, dimension = key
            session.add(HourlyRollup(hour=hour, language=language, metric=metric,
                                     dimension=dimension, count=count, sum=total))
        else:
            row.count += count
            row.sum += total


async def _upsert_sums(session: AsyncSession, model: type[Base],
                       rows: list[dict[str, Any]]) -> None:
    """Add rows to a rollup table: ``INSERT … ON CONFLICT (primary key) DO UPDATE`` adding
    every non-key column, one statement for the batch."""
    if not rows:
        return
    table = model.__table__
    assert isinstance(table, Table)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    keys = [column.name for column in table.primary_key.columns]
    statement = insert.on_conflict_do_update(index_elements=keys, set_={
        column.name: column + insert.excluded[column.name]
        for column in table.columns if column.name not in keys})
    await session.execute(statement, rows)


async def fold_all(maker: async_sessionmaker[AsyncSession], *, reopen_days: int,
                   batch: int = BATCH) -> int:
    """Fold until the outbox is drained (each batch its own transaction)."""
    total = 0
    while True:
        async with maker() as session:
            folded = await fold_once(session, reopen_days=reopen_days, batch=batch)
            await session.commit()
        total += folded
        if folded < batch:
            return total


async def run_forever(maker: async_sessionmaker[AsyncSession], *, reopen_days: int,
                      interval_s: float = 2.0) -> None:
    """The in-process folder the API runs (``web/app.py``): every ``interval_s``."""
    while True:
        try:
            await fold_all(maker, reopen_days=reopen_days)
        except Exception:
            logger.exception("analytics fold failed; retrying")
        await asyncio.sleep(interval_s)
