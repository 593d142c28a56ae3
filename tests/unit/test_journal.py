"""The journal contract against both journals: the embedded queue's SQLite file and Redis.

The Redis journal runs against the server on 127.0.0.1:6379, each test under its own key
prefix (removed afterwards). Without a server there it is skipped, or fails under CI.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.contract.journal import JournalContract
from tests.servers import unavailable
from workers.redis_journal import RedisJournal
from workers.sqlite_journal import SQLiteJournal

pytestmark = pytest.mark.unit

REDIS_URL = "redis://127.0.0.1:6379/0"


class TestSQLiteJournal(JournalContract):
    @pytest.fixture
    def journal(self, tmp_path: Path) -> Iterator[SQLiteJournal]:
        journal = SQLiteJournal(tmp_path / "queue.db")
        yield journal
        journal.close()

    def queued(self, journal: SQLiteJournal, task: str) -> str:
        return journal.add(task, "{}")

    def test_persists_across_reopen(self, tmp_path: Path) -> None:
        journal = SQLiteJournal(tmp_path / "nested" / "queue.db")
        task_id = journal.add("index_document", "{}", key="kettle:1")
        journal.set_applied_version("kettle", 1)
        journal.close()
        reopened = SQLiteJournal(tmp_path / "nested" / "queue.db")
        try:
            assert reopened.task_for_key("kettle:1") == task_id
            assert reopened.add("index_document", "{}", key="kettle:1") == task_id
            assert reopened.applied_version("kettle") == 1
            assert reopened.pending() == 1
        finally:
            reopened.close()


class TestRedisJournal(JournalContract):
    @pytest.fixture
    def journal(self) -> Iterator[RedisJournal]:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        try:
            client.ping()
        except redis.ConnectionError:
            client.close()
            unavailable(f"no Redis server at {REDIS_URL} (redis-server --port 6379)")
        prefix = f"parley-test-{uuid.uuid4().hex}:"
        yield RedisJournal(client, prefix=prefix)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()

    def queued(self, journal: RedisJournal, task: str) -> str:
        task_id = uuid.uuid4().hex
        journal.queued(task_id, task)
        return task_id
