"""Turn locks (conversations/locks.py): one turn at a time per conversation.

Two lock objects with connections of their own stand for two API processes. The in-process
locks do not serialise across them (which is why the others exist); PostgreSQL's advisory
locks and Redis's do. PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are the servers
CI starts; without them these tests are skipped, or fail under CI.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from conversations.locks import (
    ConversationLocks,
    LocalLocks,
    PostgresLocks,
    RedisLocks,
    create_locks,
)
from core.config import Settings
from core.errors import DependencyUnavailable
from tests.servers import REDIS_URL, require_postgres, require_redis

pytestmark = pytest.mark.unit


async def overlaps(first: ConversationLocks, second: ConversationLocks, *,
                   conversation: str = "c1", hold_s: float = 0.15) -> bool:
    """Run two turns through each lock object at once; True when any two overlapped."""
    loop = asyncio.get_running_loop()
    spans: list[tuple[float, float]] = []

    async def turn(locks: ConversationLocks) -> None:
        async with locks.hold(conversation):
            started = loop.time()
            await asyncio.sleep(hold_s)
            spans.append((started, loop.time()))

    await asyncio.gather(*(turn(locks) for locks in (first, second, first, second)))
    spans.sort()
    assert len(spans) == 4
    return any(start < end for (_, end), (start, _) in itertools.pairwise(spans))


# ---------------------------------------------------------------- in process

async def test_local_locks_serialise_one_process_only() -> None:
    one = LocalLocks()
    assert not await overlaps(one, one)
    assert await overlaps(LocalLocks(), LocalLocks())  # two processes: no protection


async def test_local_locks_are_per_conversation() -> None:
    locks = LocalLocks()
    async with locks.hold("a"):
        await asyncio.wait_for(_enter(locks, "b"), 1)


async def _enter(locks: ConversationLocks, conversation: str) -> None:
    async with locks.hold(conversation):
        pass


# ---------------------------------------------------------------- Redis

@pytest.fixture
async def redis_pair() -> AsyncIterator[tuple[RedisLocks, RedisLocks]]:
    require_redis()
    prefix = f"parley-test-{uuid.uuid4().hex}"
    pair = (RedisLocks(REDIS_URL, prefix=prefix, ttl_s=0.6, wait_s=2),
            RedisLocks(REDIS_URL, prefix=prefix, ttl_s=0.6, wait_s=2))
    yield pair
    for locks in pair:
        await locks.aclose()


async def test_redis_locks_serialise_across_processes(
        redis_pair: tuple[RedisLocks, RedisLocks]) -> None:
    assert not await overlaps(*redis_pair)


async def test_a_redis_lock_is_renewed_while_its_turn_runs(
        redis_pair: tuple[RedisLocks, RedisLocks]) -> None:
    first, second = redis_pair
    # Only the 0.3 s below may end the wait: on a loaded machine the event loop can stall past
    # the fixture's 2 s, which would end it as "busy" and say nothing about renewal.
    second._wait_s = 30
    async with first.hold("c2"):
        await asyncio.sleep(1.5)  # 2.5 ttls: without renewal the other would get in
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_enter(second, "c2"), 0.3)


async def test_a_redis_lock_is_released_only_by_its_holder(
        redis_pair: tuple[RedisLocks, RedisLocks]) -> None:
    first, second = redis_pair
    key = first._prefix + "c3"
    raw = redis.Redis.from_url(REDIS_URL)
    async with first.hold("c3"):
        raw.set(key, "someone-else", px=5000)  # as if it had expired and been taken
    try:
        assert raw.get(key) == b"someone-else"  # first's release left it alone
    finally:
        raw.delete(key)
        raw.close()
    await asyncio.wait_for(_enter(second, "c3"), 1)


async def test_waiting_too_long_for_a_redis_lock_is_503(
        redis_pair: tuple[RedisLocks, RedisLocks]) -> None:
    first, second = redis_pair
    second._wait_s = 0.3
    async with first.hold("c4"):
        with pytest.raises(DependencyUnavailable) as raised:
            await _enter(second, "c4")
    assert raised.value.code == "conversation_busy"


async def test_an_unreachable_redis_is_503() -> None:
    locks = RedisLocks("redis://127.0.0.1:1/0", wait_s=1)
    try:
        with pytest.raises(DependencyUnavailable) as raised:
            await _enter(locks, "c1")
        assert raised.value.code == "turn_lock_unavailable"
    finally:
        await locks.aclose()


# ---------------------------------------------------------------- PostgreSQL

@pytest.fixture
async def postgres_locks() -> AsyncIterator[Callable[..., PostgresLocks]]:
    """Makes lock objects, each with a connection of its own; closes them after the test."""
    url = require_postgres()
    made: list[PostgresLocks] = []

    def make(**options: Any) -> PostgresLocks:
        made.append(PostgresLocks(url, **options))
        return made[-1]

    yield make
    for locks in made:
        await locks.aclose()


async def test_postgres_locks_serialise_across_processes(
        postgres_locks: Callable[..., PostgresLocks]) -> None:
    first, second = postgres_locks(), postgres_locks()
    conversation = f"c-{uuid.uuid4().hex}"
    assert not await overlaps(first, second, conversation=conversation)
    async with first.hold(conversation):  # another conversation is not held up
        await asyncio.wait_for(_enter(second, f"other-{uuid.uuid4().hex}"), 2)


async def test_waiting_too_long_for_a_postgres_lock_is_503(
        postgres_locks: Callable[..., PostgresLocks]) -> None:
    first, second = postgres_locks(), postgres_locks(wait_s=0.3)
    conversation = f"c-{uuid.uuid4().hex}"
    async with first.hold(conversation):
        with pytest.raises(DependencyUnavailable) as raised:
            await _enter(second, conversation)
    assert raised.value.code == "conversation_busy"
    await asyncio.wait_for(_enter(second, conversation), 2)  # released with its turn


async def test_a_failed_turn_releases_its_postgres_lock(
        postgres_locks: Callable[..., PostgresLocks]) -> None:
    first, second = postgres_locks(), postgres_locks(wait_s=1)
    conversation = f"c-{uuid.uuid4().hex}"
    with pytest.raises(RuntimeError):
        async with first.hold(conversation):
            raise RuntimeError("Rasa fell over")
    await asyncio.wait_for(_enter(second, conversation), 2)


# ---------------------------------------------------------------- selection

def _settings(tmp_path: Path, **values: str) -> Settings:
    return Settings(environment="test", var_dir=tmp_path, secret_key="x" * 32,
                    rasa_token="y" * 32, **values)  # type: ignore[arg-type]


async def test_the_settings_pick_the_locks(tmp_path: Path) -> None:
    cases = [({}, LocalLocks),
             ({"stream_url": REDIS_URL}, RedisLocks),
             ({"database_url": "postgresql://u@127.0.0.1:1/db", "stream_url": REDIS_URL},
              PostgresLocks),
             ({"database_url": "postgresql://u@127.0.0.1:1/db", "turn_lock_url": REDIS_URL},
              RedisLocks),
             ({"stream_url": REDIS_URL, "turn_lock_url": "local"}, LocalLocks)]
    for values, kind in cases:
        locks = create_locks(_settings(tmp_path, **values))
        try:
            assert isinstance(locks, kind), values
        finally:
            await locks.aclose()
    with pytest.raises(ValueError, match="PARLEY_TURN_LOCK_URL"):
        create_locks(_settings(tmp_path, turn_lock_url="amqp://x"))
