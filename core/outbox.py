"""The transactional outbox: facts about conversations, written in the same transaction as the
change they describe, for analytics (``analytics.fold``) to read after a cursor.

Domains record events through this module and never import ``analytics``, which is built on
top of them. An event is a row of ``outbox_events``:

- ``id`` grows with every insert: the fold's cursor;
- ``key`` is unique and derived from the stored row the event describes (a message's public id,
  a state transition's id), so a retried request or a replayed turn records nothing new;
- ``kind`` is one of ``KINDS``; ``payload`` is JSON and holds no customer text except an
  answer's question (the knowledge-gap report needs it).

Duplicates: ``record`` is ``INSERT … ON CONFLICT (key) DO NOTHING`` (SQLite and PostgreSQL
dialect inserts). A check-then-insert would race between two transactions, and letting the
unique constraint fail would roll back the change the event belongs to; the conflict clause
makes a second recording of the same key a no-op inside the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.dml import Insert

from core.db import Base, UTCDateTime, utcnow

KINDS = frozenset({
    "conversation.opened", "message", "answer", "nlu.parse", "handoff", "assigned",
    "agent.first_reply", "resolved", "reopened", "csat",
})


class OutboxEvent(Base):
    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    conversation_id: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def _statement(dialect: str, values: dict[str, Any]) -> Insert:
    if values["kind"] not in KINDS:
        raise ValueError(f"unknown outbox event kind {values['kind']!r}")
    if dialect == "postgresql":
        return postgresql.insert(OutboxEvent).values(**values).on_conflict_do_nothing(
            index_elements=["key"])
    if dialect == "sqlite":
        return sqlite.insert(OutboxEvent).values(**values).on_conflict_do_nothing(
            index_elements=["key"])
    raise NotImplementedError(f"the outbox supports SQLite and PostgreSQL, not {dialect}")


def _values(kind: str, key: str, conversation_id: str, at: datetime | None,
            language: str | None, payload: dict[str, Any] | None) -> dict[str, Any]:
    return {"kind": kind, "key": key, "conversation_id": conversation_id, "at": at or utcnow(),
            "language": language, "payload": payload or {}}


async def record(session: AsyncSession, *, kind: str, key: str, conversation_id: str,
                 at: datetime | None = None, language: str | None = None,
                 payload: dict[str, Any] | None = None) -> None:
    """Add an event to the caller's transaction (the caller commits); a no-op when ``key`` was
    recorded before."""
    dialect = session.get_bind().dialect.name
    await session.execute(_statement(dialect, _values(kind, key, conversation_id, at, language,
                                                      payload)))


def record_on(connection: Connection, *, kind: str, key: str, conversation_id: str,
              at: datetime | None = None, language: str | None = None,
              payload: dict[str, Any] | None = None) -> None:
    """``record`` for flush-time listeners, which get the flush's own connection."""
    connection.execute(_statement(connection.dialect.name,
                                  _values(kind, key, conversation_id, at, language, payload)))
