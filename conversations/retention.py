"""Retention: delete the conversations nobody has touched for N days.

A conversation's last activity is the latest of its own change (``updated_at``: a state change,
a claim, a rating), its newest message (customer, bot or agent) and its newest state-change
record. Conversations older than the cut-off are erased in batches (``conversations.erasure``:
messages, notes, audit rows, outbox events, answer facts; the text-free analytics facts and the
hourly rollups stay), together with their Rasa tracker (``conversations.trackers``), one
transaction per batch. A rerun finds nothing more to do, and an interrupted run leaves whole
conversations, never half of one.

``parley retention --days N`` runs it by hand; with ``PARLEY_RETENTION_DAYS`` set, the worker
runs it once a day (``conversations.tasks``).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conversations.erasure import conversation_tables, erase
from conversations.models import Conversation, Message, StateTransition
from conversations.trackers import erase_trackers
from core.config import Settings
from core.db import utcnow

logger = logging.getLogger(__name__)
BATCH = 500


@dataclass
class RetentionReport:
    days: int
    cutoff: datetime
    deleted: Counter[str] = field(default_factory=Counter)  # rows per table
    tracker_events: int = 0
    batches: int = 0
    kept_tables: list[str] = field(default_factory=list)  # text-free facts left in place

    @property
    def conversations(self) -> int:
        return self.deleted[Conversation.__tablename__]

    def as_dict(self) -> dict[str, object]:
        return {"days": self.days, "cutoff": self.cutoff.isoformat(),
                "conversations": self.conversations, "deleted": dict(sorted(self.deleted.items())),
                "tracker_events": self.tracker_events, "batches": self.batches,
                "kept_tables": self.kept_tables}


async def stale_conversations(session: AsyncSession, *, cutoff: datetime,
                              limit: int) -> list[str]:
    """Ids of up to ``limit`` conversations with no activity since ``cutoff``. On PostgreSQL
    they are locked, skipping any a request holds (it is active, then)."""
    recent_message = exists().where(Message.conversation_id == Conversation.id,
                                    Message.created_at >= cutoff)
    recent_change = exists().where(StateTransition.conversation_id == Conversation.id,
                                   StateTransition.created_at >= cutoff)
    stmt = (select(Conversation.id)
            .where(Conversation.updated_at < cutoff, Conversation.created_at < cutoff,
                   ~recent_message, ~recent_change)
            .order_by(Conversation.updated_at).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=Conversation)
    return list((await session.execute(stmt)).scalars())


async def apply_retention(sessions: async_sessionmaker[AsyncSession], settings: Settings, *,
                          days: int, batch: int = BATCH,
                          now: datetime | None = None) -> RetentionReport:
    """Erase every conversation whose last activity is more than ``days`` days old."""
    if days < 1:
        raise ValueError("retention needs at least 1 day")
    report = RetentionReport(days=days, cutoff=(now or utcnow()) - timedelta(days=days))
    async with sessions() as session:
        tables = await conversation_tables(session)
    report.kept_tables = [t.name for t in tables.kept]
    while True:
        async with sessions() as session, session.begin():
            ids = await stale_conversations(session, cutoff=report.cutoff, limit=batch)
            if not ids:
                break
            report.deleted += await erase(session, ids=ids, tables=tables)
            report.tracker_events += await erase_trackers(session, settings, ids=ids)
        report.batches += 1
        logger.info("retention: erased %d conversation(s) older than %d days", len(ids), days)
        if len(ids) < batch:
            break
    return report
