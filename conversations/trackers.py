"""Erasing conversations from Rasa's tracker store, which keeps every event of a dialogue
(the customer's messages included) under the conversation's id as Rasa's ``sender_id``.

Where the tracker lives follows what ``parley run`` writes into Rasa's endpoints
(``web/runner.py``: ``endpoints_config``):

- Redis when ``PARLEY_TRACKER_STORE_URL`` is a ``redis://`` URL: one key per conversation.
  Rasa 3.6 accepts only an alphanumeric key prefix and falls back to ``tracker:`` otherwise,
  which is what ``parley_tracker`` gives;
- the ``events`` table of Parley's own PostgreSQL database when that is PostgreSQL (deleted in
  the caller's transaction);
- else the SQLite file ``<var_dir>/rasa/tracker.db`` (nothing to do before Rasa created it).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import column, delete, inspect, table
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings

EVENTS = table("events", column("sender_id"))
RASA_REDIS_PREFIX = "tracker:"
CHUNK = 500


def _redis(settings: Settings) -> bool:
    return settings.tracker_store_url.startswith(("redis://", "rediss://"))


async def erase_trackers(session: AsyncSession, settings: Settings, *,
                         ids: Sequence[str]) -> int:
    """Delete the dialogue state of the conversations ``ids``; events (or Redis keys) deleted."""
    if not ids:
        return 0
    if _redis(settings):
        return await _erase_redis(settings.tracker_store_url, ids)
    if session.get_bind().dialect.name == "postgresql":
        connection = await session.connection()
        if not await connection.run_sync(lambda c: inspect(c).has_table("events")):
            return 0
        deleted = 0
        for start in range(0, len(ids), CHUNK):
            result = await session.execute(delete(EVENTS).where(
                EVENTS.c.sender_id.in_(list(ids[start:start + CHUNK]))))
            deleted += result.rowcount  # type: ignore[attr-defined]
        return deleted
    return await asyncio.to_thread(_erase_sqlite, settings.var_dir / "rasa" / "tracker.db", ids)


def _erase_sqlite(path: Path, ids: Sequence[str]) -> int:
    if not path.exists():
        return 0
    connection = sqlite3.connect(path, timeout=30)
    try:
        if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                              "AND name = 'events'").fetchone() is None:
            return 0
        deleted = 0
        with connection:
            for start in range(0, len(ids), CHUNK):
                chunk = list(ids[start:start + CHUNK])
                marks = ",".join("?" * len(chunk))
                deleted += connection.execute(
                    f"DELETE FROM events WHERE sender_id IN ({marks})", chunk).rowcount
        return deleted
    finally:
        connection.close()


async def _erase_redis(url: str, ids: Sequence[str]) -> int:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:
        deleted = 0
        for start in range(0, len(ids), CHUNK):
            deleted += int(await client.delete(
                *(RASA_REDIS_PREFIX + i for i in ids[start:start + CHUNK])))
        return deleted
    finally:
        await client.aclose()
