"""The embedded queue's store in one SQLite file: tasks, their states, dead letters, versions.

Tables: ``tasks`` (the queue itself, in ``seq`` order, with each task's state, attempts,
error and idempotency key), ``dead_letters`` and ``applied_versions``. WAL mode with
``synchronous=FULL``: a task is on disk before ``add`` returns. Other processes may write the
same file (the CLI enqueues); only one works it (``workers.embedded``), so the per-document
locks are thread locks.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workers.context import FINAL_STATES, Payload, State

_FINAL_SQL = "(" + ", ".join(f"'{state}'" for state in sorted(FINAL_STATES)) + ")"

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    key TEXT UNIQUE,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    task_id TEXT,
    payload TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    key TEXT UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS applied_versions (
    doc_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    updated REAL NOT NULL
);
"""
_NEXT_SEQ = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM tasks)"


class SQLiteJournal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()  # the connection: one statement or transaction at a time
        self._named: dict[str, threading.RLock] = {}

    # -- what the queue side uses -----------------------------------------------------------

    def add(self, task: str, body: str, *, key: str | None = None) -> str:
        """Queue a task (``body``: its payload as JSON); a ``key`` seen before returns the
        first task's id and adds nothing."""
        with self._transaction() as db:
            row = db.execute("SELECT id FROM tasks WHERE key = ?", (key,)).fetchone() \
                if key is not None else None
            if row is not None:
                return str(row["id"])
            task_id, now = uuid.uuid4().hex, time.time()
            db.execute(
                "INSERT INTO tasks (id, seq, name, payload, key, state, created, updated) "
                f"VALUES (?, {_NEXT_SEQ}, ?, ?, ?, 'queued', ?, ?)",
                (task_id, task, body, key, now, now))
        return task_id

    def task_for_key(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT id FROM tasks WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["id"])

    def status(self, task_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT id, name, state, attempts, error FROM tasks "
                                   "WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            return None
        return {"id": row["id"], "task": row["name"], "state": row["state"],
                "attempts": row["attempts"], "error": row["error"]}

    def pending(self) -> int:
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM tasks WHERE state IN ('queued', 'retry', 'running')"
            ).fetchone()
        return int(count)

    def next_task(self) -> sqlite3.Row | None:
        """The oldest task waiting to run (``id``, ``name``, ``payload``, ``not_before``)."""
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(
                "SELECT id, name, payload, not_before FROM tasks WHERE state IN "
                "('queued', 'retry') ORDER BY seq LIMIT 1").fetchone()
        return row

    def retry_at(self, task_id: str, when: float) -> None:
        with self._lock:
            self._db.execute("UPDATE tasks SET not_before = ? WHERE id = ?", (when, task_id))

    def recover(self, *, keep_finished_s: float) -> int:
        """Queue again what a stopped worker left running (its count); forget finished tasks
        older than ``keep_finished_s`` (dead ones stay, with their dead letters)."""
        with self._transaction() as db:
            interrupted = db.execute("UPDATE tasks SET state = 'queued', not_before = 0 "
                                     "WHERE state = 'running'").rowcount
            db.execute("DELETE FROM tasks WHERE state IN ('done', 'skipped') AND updated < ?",
                       (time.time() - keep_finished_s,))
        return int(interrupted)

    def dead_letters(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM dead_letters ORDER BY created, id").fetchall()
        return [{"id": r["id"], "task": r["task"], "task_id": r["task_id"],
                 "payload": json.loads(r["payload"]), "error": r["error"],
                 "attempts": r["attempts"], "created": r["created"]} for r in rows]

    def requeue_dead_letter(self, letter_id: str, *, task_id: str, task: str,
                            payload: Payload) -> bool:
        """In one transaction: remove the letter and queue its task last, with no attempts
        (``task_id``'s row again, or a new one if it was pruned). False: no such letter."""
        with self._transaction() as db:
            if not db.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,)).rowcount:
                return False
            now = time.time()
            if not db.execute(
                    "UPDATE tasks SET state = 'queued', attempts = 0, not_before = 0, "
                    f"error = '', seq = {_NEXT_SEQ}, updated = ? WHERE id = ?",
                    (now, task_id)).rowcount:
                db.execute(
                    "INSERT INTO tasks (id, seq, name, payload, state, created, updated) "
                    f"VALUES (?, {_NEXT_SEQ}, ?, ?, 'queued', ?, ?)",
                    (task_id, task, json.dumps(payload, ensure_ascii=False, sort_keys=True),
                     now, now))
        return True

    def close(self) -> None:
        self._db.close()

    # -- the Journal the shared base writes -------------------------------------------------

    def begin(self, task_id: str, task: str) -> int | None:
        with self._lock:
            row = self._db.execute(
                "UPDATE tasks SET state = 'running', attempts = attempts + 1, updated = ? "
                f"WHERE id = ? AND state NOT IN {_FINAL_SQL} RETURNING attempts",
                (time.time(), task_id)).fetchone()
            if row is None and self._db.execute("SELECT 1 FROM tasks WHERE id = ?",
                                                (task_id,)).fetchone():
                return None
        return int(row["attempts"]) if row else 1

    def finish(self, task_id: str, state: State, *, error: str = "") -> None:
        with self._lock:
            self._db.execute("UPDATE tasks SET state = ?, error = ?, updated = ? "
                             f"WHERE id = ? AND state NOT IN {_FINAL_SQL}",
                             (state, error, time.time(), task_id))

    def add_dead_letter(self, *, task: str, payload: Any, error: str, attempts: int,
                        task_id: str | None = None, key: str | None = None) -> str:
        letter_id = uuid.uuid4().hex
        with self._transaction() as db:
            db.execute(
                "INSERT INTO dead_letters (id, task, task_id, payload, error, attempts, key,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
                (letter_id, task, task_id, json.dumps(payload, ensure_ascii=False, default=str),
                 error, attempts, key, time.time()))
            if key is not None:
                (letter_id,) = db.execute("SELECT id FROM dead_letters WHERE key = ?",
                                          (key,)).fetchone()
        return str(letter_id)

    def applied_version(self, doc_id: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT version FROM applied_versions WHERE doc_id = ?",
                                   (doc_id,)).fetchone()
        return None if row is None else int(row["version"])

    def set_applied_version(self, doc_id: str, version: int | None) -> None:
        with self._lock:
            if version is None:
                self._db.execute("DELETE FROM applied_versions WHERE doc_id = ?", (doc_id,))
            else:
                self._db.execute(
                    "INSERT INTO applied_versions (doc_id, version, updated) VALUES (?, ?, ?) "
                    "ON CONFLICT(doc_id) DO UPDATE SET version = excluded.version, "
                    "updated = excluded.updated", (doc_id, version, time.time()))

    def lock(self, name: str, timeout_s: float, *, owner: str | None = None
             ) -> threading.RLock:
        with self._lock:  # one process works this file, so a thread lock suffices
            return self._named.setdefault(name, threading.RLock())

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
