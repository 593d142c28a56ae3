"""One person's data: find it, export it, delete it (``parley customer export|delete``).

A person is named by e-mail or by the host site's customer id. Their conversations are the
ones the host site vouched for them in (the verified identity stored with the conversation,
``core.customers``), and, for an e-mail, the ones where a customer message contains that
address (an anonymous chat in which they gave it, as the order check asks). The export holds
each conversation as stored: the identity, state, hand-off and CSAT fields, the messages with
what each carried, the state changes, and every other row that holds text about it (hand-off
notes, answer facts), found the way ``conversations.erasure`` finds them. Deleting erases the
same conversations and their Rasa trackers.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.erasure import (
    CHUNK,
    CONVERSATION_ID,
    ConversationTables,
    conversation_tables,
    erase,
)
from conversations.models import Conversation, Message, StateTransition
from conversations.trackers import erase_trackers
from core.config import Settings
from core.db import utcnow
from core.errors import NotFound, Unprocessable
from core.outbox import OutboxEvent

# Rendered in each conversation's own shape, or copies of what is (outbox payloads).
_SHOWN = frozenset({Message.__tablename__, StateTransition.__tablename__,
                    OutboxEvent.__tablename__})


@dataclass(frozen=True)
class Person:
    email: str | None = None
    customer_id: str | None = None

    @classmethod
    def named(cls, *, email: str | None, customer_id: str | None) -> Person:
        email = (email or "").strip().lower() or None
        customer_id = (customer_id or "").strip() or None
        if (email is None) == (customer_id is None):
            raise Unprocessable("Name the person by exactly one of an e-mail address or a "
                                "customer id.", code="customer_not_named")
        if email is not None and "@" not in email:
            raise Unprocessable(f"{email!r} is not an e-mail address.", code="customer_not_named")
        return cls(email, customer_id)

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("email", self.email), ("customer_id", self.customer_id)) if v}


async def find_conversations(session: AsyncSession, person: Person) -> dict[str, list[str]]:
    """Conversation id → how it was found (``identity``, ``message``), oldest first;
    ``NotFound`` (``customer_not_found``) when there is none."""
    identity = Conversation.customer_identity
    found: dict[str, list[str]] = {}
    by_identity = (identity["email"].as_string() == person.email if person.email
                   else identity["customer_id"].as_string() == person.customer_id)
    rows = await session.execute(select(Conversation.id, Conversation.created_at)
                                 .where(identity.is_not(None), by_identity))
    dated = {cid: at for cid, at in rows.all()}
    for cid in dated:
        found.setdefault(cid, []).append("identity")
    if person.email:
        rows = await session.execute(
            select(Conversation.id, Conversation.created_at).distinct()
            .join(Message, Message.conversation_id == Conversation.id)
            .where(Message.role == "customer",
                   Message.text.icontains(person.email, autoescape=True)))
        for cid, at in rows.all():
            dated[cid] = at
            found.setdefault(cid, []).append("message")
    if not found:
        raise NotFound("No conversation is stored for this customer.",
                       code="customer_not_found")
    return {cid: found[cid] for cid in sorted(found, key=lambda c: (dated[c], c))}


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _conversation(c: Conversation, matched_by: list[str]) -> dict[str, Any]:
    return {
        "id": c.id, "matched_by": matched_by, "created_at": _json(c.created_at),
        "updated_at": _json(c.updated_at), "locale": c.locale, "state": c.state,
        "verified_identity": c.customer_identity,
        "csat": None if c.csat_score is None else {"score": c.csat_score,
                                                   "comment": c.csat_comment},
        "handoff": {"reason": c.handoff_reason, "skill": c.skill, "priority": c.priority,
                    "agent_id": c.agent_id, "queued_at": _json(c.queued_at),
                    "assigned_at": _json(c.assigned_at),
                    "first_agent_reply_at": _json(c.first_agent_reply_at),
                    "resolved_at": _json(c.resolved_at)},
        "messages": [], "state_changes": [], "other": {},
    }


async def export_customer(session: AsyncSession, person: Person) -> dict[str, Any]:
    """Everything stored about ``person``, JSON-safe."""
    found = await find_conversations(session, person)
    tables = await conversation_tables(session)
    ids = list(found)
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        for c in (await session.execute(select(Conversation)
                                        .where(Conversation.id.in_(chunk)))).scalars():
            out[c.id] = _conversation(c, found[c.id])
        for m in (await session.execute(select(Message).where(
                Message.conversation_id.in_(chunk)).order_by(Message.seq))).scalars():
            out[m.conversation_id]["messages"].append({
                "id": m.id, "role": m.role, "text": m.text, "created_at": _json(m.created_at),
                "data": m.data.model_dump(mode="json", exclude_defaults=True)})
        for t in (await session.execute(select(StateTransition).where(
                StateTransition.conversation_id.in_(chunk))
                .order_by(StateTransition.id))).scalars():
            out[t.conversation_id]["state_changes"].append({
                "from": t.from_state, "to": t.to_state, "actor": t.actor, "reason": t.reason,
                "at": _json(t.created_at)})
        await _other_rows(session, tables, chunk, out)
    return {"customer": person.as_dict(), "exported_at": _json(utcnow()),
            "conversations": [out[cid] for cid in ids if cid in out]}


async def _other_rows(session: AsyncSession, tables: ConversationTables, chunk: list[str],
                      out: dict[str, dict[str, Any]]) -> None:
    for table in tables.erased:
        if table.name in _SHOWN:
            continue
        rows = await session.execute(select(table).where(table.c[CONVERSATION_ID].in_(chunk)))
        for row in rows.mappings():
            record = {k: _json(v) for k, v in row.items() if k != CONVERSATION_ID}
            out[row[CONVERSATION_ID]]["other"].setdefault(table.name, []).append(record)


async def delete_customer(session: AsyncSession, settings: Settings, person: Person, *,
                          missing_ok: bool = False) -> Counter[str]:
    """Erase ``person``'s conversations (the caller commits); rows deleted per table, Rasa's
    tracker events under ``tracker_events``. ``NotFound`` when there is nothing to erase,
    unless ``missing_ok`` (the admin API: deleting twice deletes nothing the second time)."""
    try:
        ids = list(await find_conversations(session, person))
    except NotFound:
        if not missing_ok:
            raise
        return Counter({"conversations": 0, "tracker_events": 0})
    tables = await conversation_tables(session)
    deleted = await erase(session, ids=ids, tables=tables)
    deleted["tracker_events"] = await erase_trackers(session, settings, ids=ids)
    return deleted
