"""The CSV export: one row per conversation of the cohort, the customer's first message
redacted (``core.redact``) and neutralised for spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, tzinfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.metrics import cohort
from analytics.models import ConversationFact as F
from conversations.models import Message
from core.redact import redact

COLUMNS = ("id", "opened_at", "language", "outcome", "handoff_reason", "first_response_s",
           "resolution_s", "csat", "csat_by", "messages", "first_message")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def outcome(fact: F) -> str:
    if fact.handed_off:
        return "handed_off"
    if fact.bot_resolved:
        return "bot_resolved"
    return "resolved" if fact.resolved_at is not None else "open"


def _cell(text: str) -> str:
    """Text a spreadsheet will not run as a formula."""
    return "'" + text if text.startswith(FORMULA_START) else text


async def _first_messages(session: AsyncSession, ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        first = (select(func.min(Message.seq))
                 .where(Message.role == "customer",
                        Message.conversation_id.in_(ids[start:start + 500]))
                 .group_by(Message.conversation_id))
        rows = await session.execute(select(Message.conversation_id, Message.text)
                                     .where(Message.seq.in_(first)))
        found.update({cid: text for cid, text in rows.all()})
    return found


async def rows(session: AsyncSession, *, start: datetime, end: datetime, zone: tzinfo,
               lang: str | None = None) -> list[list[object]]:
    facts = list((await session.execute(
        select(F).where(*cohort(start, end, lang=lang)).order_by(F.opened_at))).scalars())
    first = await _first_messages(session, [f.conversation_id for f in facts])
    return [[f.conversation_id, f.opened_at.astimezone(zone).isoformat(), f.language,
             outcome(f), f.handoff_reason or "", _number(f.first_response_s),
             _number(f.resolution_s), "" if f.csat is None else f.csat, f.csat_by or "",
             f.messages, _cell(redact(first.get(f.conversation_id, "")))] for f in facts]


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def to_csv(table: list[list[object]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in table:
        writer.writerow(row)
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
