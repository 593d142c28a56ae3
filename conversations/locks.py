"""One turn at a time per conversation, in one API process or across many.

``ConversationLocks.hold(conversation_id)`` is an async context manager held while a turn
(or a hand-back) runs. Three implementations, chosen by ``create_locks`` from the settings:

- ``LocalLocks``: an ``asyncio.Lock`` per conversation. Enough for one API process (the
  embedded default, SQLite).
- ``PostgresLocks``: a transaction-scoped advisory lock, ``pg_advisory_xact_lock(<parley>,
  hashtext(id))``, on a connection of its own (a small pool beside the app's), held while the
  turn runs, Rasa's seconds included. The connection sits idle in a transaction meanwhile; in
  exchange the lock lives in the database that holds the conversation and is released by
  PostgreSQL itself when the transaction ends or the process dies: no expiry to tune, no
  stale holder. Two conversations whose ids hash alike merely wait for each other.
- ``RedisLocks``: ``SET key token NX PX ttl``, renewed every third of the ttl while held,
  released by a Lua script only by the token's owner. A holder that stalls for longer than
  the ttl loses the lock (a warning is logged); the default ttl is 30 s.

The distributed ones queue the waiters of one process on a local lock first, so a process
never holds more than one connection (or polls Redis more than once) per busy conversation.
Waiting longer than ``wait_s`` raises ``DependencyUnavailable`` (``conversation_busy``): the
message is stored when the lock is held, so a client retries with the same id.

Callers use ``conversations.flows.conversation_lock``, which asks the locks this process was
started with (``use``, called by the app's lifespan).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from core.config import Settings
from core.errors import DependencyUnavailable

logger = logging.getLogger(__name__)
ADVISORY_NAMESPACE = 0x50524C59  # "PRLY": the first key of Parley's advisory locks


class ConversationLocks(Protocol):
    def hold(self, conversation_id: str) -> AbstractAsyncContextManager[None]:
        """Held by one turn of the conversation at a time."""

    async def aclose(self) -> None:
        """Release connections."""


def busy(conversation_id: str, why: str) -> DependencyUnavailable:
    return DependencyUnavailable(f"Another turn of this conversation is still running ({why}); "
                                 "retry with the same client_message_id.",
                                 code="conversation_busy")


class LocalLocks:
    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary())

    def lock(self, conversation_id: str) -> asyncio.Lock:
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[conversation_id] = lock
        return lock

    def hold(self, conversation_id: str) -> AbstractAsyncContextManager[None]:
        return _holding(self.lock(conversation_id))

    async def aclose(self) -> None:
        return None


@asynccontextmanager
async def _holding(lock: asyncio.Lock) -> AsyncIterator[None]:
    async with lock:
        yield


class PostgresLocks:
    def __init__(self, database_url: str, *, wait_s: float = 75.0, pool_size: int = 10,
                 max_overflow: int = 20) -> None:
        from core import db

        self._engine = _engine(db.async_url(database_url), pool_size=pool_size,
                               max_overflow=max_overflow)
        self._local = LocalLocks()
        self._wait_ms = int(wait_s * 1000)

    @asynccontextmanager
    async def hold(self, conversation_id: str) -> AsyncIterator[None]:
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError, OperationalError

        async with self._local.lock(conversation_id):
            try:
                connection = await self._engine.connect()
            except (OperationalError, OSError) as exc:
                raise DependencyUnavailable("The database is unreachable.",
                                            code="database_unavailable") from exc
            try:
                transaction = await connection.begin()
                await connection.execute(text(f"SET LOCAL lock_timeout = {self._wait_ms}"))
                await connection.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
                try:
                    await connection.execute(
                        text("SELECT pg_advisory_xact_lock(:space, hashtext(:id))"),
                        {"space": ADVISORY_NAMESPACE, "id": conversation_id})
                except DBAPIError as exc:
                    if "lock timeout" in str(exc.orig).lower() or getattr(
                            exc.orig, "sqlstate", "") == "55P03":
                        raise busy(conversation_id, "lock wait timed out") from exc
                    raise
                try:
                    yield
                finally:
                    with contextlib.suppress(Exception):  # ending it releases the lock
                        await transaction.rollback()
            finally:
                await connection.close()

    async def aclose(self) -> None:
        await self._engine.dispose()


def _engine(url: str, *, pool_size: int, max_overflow: int) -> Any:
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine(url, pool_size=pool_size, max_overflow=max_overflow,
                               pool_pre_ping=True)


_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


class RedisLocks:
    def __init__(self, url: str, *, prefix: str = "parley", ttl_s: float = 30.0,
                 wait_s: float = 75.0, poll_s: float = 0.05) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._prefix = f"{prefix}:turn-lock:"
        self._ttl_ms = int(ttl_s * 1000)
        self._wait_s, self._poll_s = wait_s, poll_s
        self._local = LocalLocks()

    @asynccontextmanager
    async def hold(self, conversation_id: str) -> AsyncIterator[None]:
        from redis.exceptions import RedisError

        key, token = self._prefix + conversation_id, secrets.token_hex(16)
        async with self._local.lock(conversation_id):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._wait_s
            try:
                while not await self._client.set(key, token, nx=True, px=self._ttl_ms):
                    if loop.time() >= deadline:
                        raise busy(conversation_id, "lock wait timed out")
                    await asyncio.sleep(self._poll_s * (0.5 + secrets.randbelow(100) / 100))
            except (RedisError, OSError) as exc:
                raise DependencyUnavailable("Redis is unreachable.",
                                            code="turn_lock_unavailable") from exc
            renewal = asyncio.create_task(self._renew(key, token))
            try:
                yield
            finally:
                renewal.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewal
                try:
                    await self._client.eval(_RELEASE, 1, key, token)  # type: ignore[misc]
                except (RedisError, OSError):  # it expires after the ttl
                    logger.warning("turn lock: could not release; it expires in %d ms",
                                   self._ttl_ms)

    async def _renew(self, key: str, token: str) -> None:
        from redis.exceptions import RedisError

        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                renewed = await self._client.eval(  # type: ignore[misc]
                    _RENEW, 1, key, token, str(self._ttl_ms))
            except (RedisError, OSError):
                logger.warning("turn lock: renewal failed; retrying")
                continue
            if not renewed:
                logger.warning("turn lock: lost (expired while held): turns may overlap")
                return

    async def aclose(self) -> None:
        await self._client.aclose()


def create_locks(settings: Settings) -> ConversationLocks:
    """``PARLEY_TURN_LOCK_URL`` when set (``postgresql://…`` or ``redis://…``); otherwise the
    database's advisory locks on PostgreSQL, else Redis when ``PARLEY_STREAM_URL`` names it
    (several API processes on SQLite), else in process."""
    url = settings.turn_lock_url
    if not url:
        if settings.database_url.startswith(("postgresql://", "postgres://")):
            url = settings.database_url
        elif settings.stream_url.startswith(("redis://", "rediss://", "unix://")):
            url = settings.stream_url
    wait_s = settings.rasa_timeout_s * 2 + 15  # a turn in front of us, then some
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresLocks(url, wait_s=wait_s)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisLocks(url, prefix=settings.redis_prefix, wait_s=wait_s)
    if url in ("", "local"):
        return LocalLocks()
    raise ValueError(f"PARLEY_TURN_LOCK_URL: unsupported scheme in {url.split('://')[0]!r} "
                     "(postgresql://…, redis://… or local)")


_current: ConversationLocks = LocalLocks()


def current() -> ConversationLocks:
    return _current


def use(locks: ConversationLocks) -> ConversationLocks:
    """Make ``locks`` this process's turn locks; returns the previous ones."""
    global _current
    previous, _current = _current, locks
    return previous
