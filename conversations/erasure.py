"""Erasing conversations: every row that holds what was said, wherever Parley stored it.

A conversation's data is its ``conversations`` row and every row, in any table of Parley's
database, whose ``conversation_id`` is its id: messages and state changes (this package),
hand-off notes (``handoff``), outbox events (``core.outbox``), analytics facts. The tables are
read from the database's own schema rather than imported, so this package imports nothing
above it and a table a package adds later is covered without a change here.

What goes and what stays:

- a table with a free-text column (``TEXT``, ``JSON``, an unbounded ``VARCHAR``) is erased: it
  can hold what the customer wrote or what was written about them (messages, notes, a state
  change's reason, an outbox payload, an answer fact's question and sentences);
- a table whose columns are all numbers, flags, times and short codes is kept: the
  per-conversation analytics facts (``analytics_conversations``, ``analytics_parses``). They
  hold no personal text, their random id leads nowhere once the conversation is gone, and the
  hourly rollups are kept equal to them, so last quarter's figures stay the same whether a
  summary reads the rollups or the facts.

Rasa's tracker, which repeats every message, is erased by ``conversations.trackers``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import JSON, MetaData, String, Table, Text, delete, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.models import Conversation

CONVERSATION_ID = "conversation_id"
CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True)
class ConversationTables:
    """The tables that hold rows of a conversation, besides ``conversations`` itself."""

    erased: tuple[Table, ...]  # rows deleted with the conversation
    kept: tuple[Table, ...]  # rows without free text, left for the rollups' sake


def free_text(table: Table) -> bool:
    return any(isinstance(c.type, Text | JSON)
               or (isinstance(c.type, String) and c.type.length is None)
               for c in table.columns)


def _reflect(connection: Connection) -> ConversationTables:
    names = [name for name in inspect(connection).get_table_names()
             if name != Conversation.__tablename__]
    metadata = MetaData()
    metadata.reflect(connection, only=names)
    tables = sorted((t for t in metadata.tables.values() if CONVERSATION_ID in t.columns),
                    key=lambda t: t.name)
    return ConversationTables(erased=tuple(t for t in tables if free_text(t)),
                              kept=tuple(t for t in tables if not free_text(t)))


async def conversation_tables(session: AsyncSession) -> ConversationTables:
    """Found in the database's schema (once per run: it reads every table's columns)."""
    connection = await session.connection()
    return await connection.run_sync(_reflect)


async def erase(session: AsyncSession, *, ids: Sequence[str],
                tables: ConversationTables) -> Counter[str]:
    """Delete the conversations ``ids`` and their rows in ``tables.erased`` (the caller
    commits); rows deleted per table. Ids already gone delete nothing, so a rerun is harmless."""
    deleted: Counter[str] = Counter()
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start:start + CHUNK])
        # Children first: SQLite enforces the foreign keys only where PRAGMA foreign_keys is on.
        for table in tables.erased:
            result = await session.execute(delete(table).where(
                table.c[CONVERSATION_ID].in_(chunk)))
            deleted[table.name] += result.rowcount  # type: ignore[attr-defined]
        result = await session.execute(delete(Conversation).where(Conversation.id.in_(chunk)))
        deleted[Conversation.__tablename__] += result.rowcount  # type: ignore[attr-defined]
    return +deleted
