"""The embedded task queue: one SQLite file and a worker thread in the app's own process.

The default when no broker is configured. Tasks are stored before ``enqueue`` returns, so
work survives a restart; they run one at a time in the order they were enqueued (a task
waiting for its retry holds back the ones behind it, so changes to one thing never overtake
each other). A task that was running when the process died is run again at the next
``start()`` (at-least-once; the bodies are idempotent, so it lands once). One worker per file:
``start()`` takes an exclusive lock on ``<file>.lock``. Other processes (the CLI) may enqueue
into the same file; the worker polls for their tasks.

The same file is the queue's ``Journal``: task states, dead letters and applied versions.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workers.base import (
    FINAL_STATES,
    Payload,
    RetryPolicy,
    State,
    TaskContext,
    dumps_payload,
    get_task,
    run_attempt,
)
from workers.errors import (
    DeadLetterNotFound,
    NotRetryable,
    QueueUnavailable,
    UnknownTask,
    WorkerAlreadyRunning,
)

logger = logging.getLogger(__name__)
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
RUNNABLE = ("queued", "retry")


class EmbeddedQueue:
    """A persistent, ordered task queue in SQLite with an in-process worker thread."""

    def __init__(self, path: Path, *, settings: Any = None, policy: RetryPolicy | None = None,
                 embedder: Any = None, poll_s: float = 0.5,
                 keep_finished_s: float = 7 * 24 * 3600) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.policy = policy
        self.embedder = embedder
        self.poll_s = poll_s
        self.keep_finished_s = keep_finished_s
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()  # the connection: one statement or transaction at a time
        self._named: dict[str, threading.RLock] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lockfile: Any = None

    # -- the queue --------------------------------------------------------------------------

    def enqueue(self, task: str, payload: Payload, *, key: str | None = None) -> str:
        get_task(task)
        body, now = dumps_payload(payload), time.time()
        try:
            return self._insert(task, body, key, now)
        except sqlite3.Error as exc:
            raise QueueUnavailable(f"cannot write to {self.path} ({exc})") from exc
        finally:
            self._wake.set()

    def _insert(self, task: str, body: str, key: str | None, now: float) -> str:
        with self._transaction() as db:
            row = db.execute("SELECT id FROM tasks WHERE key = ?", (key,)).fetchone() \
                if key is not None else None
            if row is not None:
                return str(row["id"])
            task_id = uuid.uuid4().hex
            db.execute(
                "INSERT INTO tasks (id, seq, name, payload, key, state, created, updated) "
                "VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM tasks), ?, ?, ?, 'queued',"
                " ?, ?)", (task_id, task, body, key, now, now))
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

    def dead_letters(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM dead_letters ORDER BY created, id").fetchall()
        return [{"id": r["id"], "task": r["task"], "task_id": r["task_id"],
                 "payload": json.loads(r["payload"]), "error": r["error"],
                 "attempts": r["attempts"], "created": r["created"]} for r in rows]

    def dead_letter(self, task: str, payload: Any, error: str, *, key: str | None = None) -> str:
        return self.add_dead_letter(task=task, payload=payload, error=error, attempts=0, key=key)

    def retry_dead_letter(self, id: str) -> None:
        with self._transaction() as db:
            letter = db.execute("SELECT * FROM dead_letters WHERE id = ?", (id,)).fetchone()
            if letter is None:
                raise DeadLetterNotFound(f"no dead letter {id!r}")
            try:
                get_task(letter["task"])
            except UnknownTask:
                raise NotRetryable(f"dead letter {id!r} names no task ({letter['task']})") \
                    from None
            payload = json.loads(letter["payload"])
            if not isinstance(payload, dict):
                raise NotRetryable(f"dead letter {id!r} has no task payload")
            updated = db.execute(
                "UPDATE tasks SET state = 'queued', attempts = 0, not_before = 0, error = '',"
                " seq = (SELECT MAX(seq) + 1 FROM tasks), updated = ? WHERE id = ?",
                (time.time(), letter["task_id"])).rowcount
            if not updated:  # the task row was pruned: enqueue it afresh
                now = time.time()
                db.execute(
                    "INSERT INTO tasks (id, seq, name, payload, state, created, updated) "
                    "VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM tasks), ?, ?, 'queued',"
                    " ?, ?)", (letter["task_id"] or uuid.uuid4().hex, letter["task"],
                               letter["payload"], now, now))
            db.execute("DELETE FROM dead_letters WHERE id = ?", (id,))
        self._wake.set()

    # -- the journal the shared base writes ----------------------------------------------------

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
        with self._lock:  # one process works this file (see start), so a thread lock suffices
            return self._named.setdefault(name, threading.RLock())

    # -- the worker ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread; re-queue what a dead worker left running."""
        if self._thread is not None and self._thread.is_alive():
            return
        handle = (self.path.parent / f"{self.path.name}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise WorkerAlreadyRunning(f"another worker is processing {self.path}") from None
        self._lockfile = handle
        with self._transaction() as db:
            interrupted = db.execute("UPDATE tasks SET state = 'queued', not_before = 0 "
                                     "WHERE state = 'running'").rowcount
            db.execute("DELETE FROM tasks WHERE state IN ('done', 'skipped') AND updated < ?",
                       (time.time() - self.keep_finished_s,))
        if interrupted:
            logger.warning("re-running %d task(s) interrupted by a stop or crash", interrupted)
        if self.settings is None:
            from core.config import get_settings

            self.settings = get_settings()
        if self.policy is None:
            self.policy = RetryPolicy.from_settings(self.settings)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._work, name="parley-embedded-worker",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the running task and stop; one still running after ``timeout`` is left to
        finish in the background (and is re-run at the next start if the process exits)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("the embedded worker is still running a task after %s s", timeout)
            return
        self._thread = None
        if self._lockfile is not None:
            self._lockfile.close()  # releases the flock
            self._lockfile = None

    def close(self) -> None:
        self.stop()
        if self._thread is None:
            self._db.close()

    def drain(self, timeout: float = 30.0) -> None:
        """Block until nothing is pending (for the CLI and tests); ``TimeoutError`` else."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.pending()} task(s) still pending after {timeout} s")
            time.sleep(0.02)

    def _work(self) -> None:
        loop = asyncio.new_event_loop()
        assert self.policy is not None
        context = TaskContext(self.settings, journal=self, embedder=self.embedder)
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                wait = self._run_next(loop, context, self.policy)
                if wait:
                    self._wake.wait(wait)
        except BaseException:
            # The task keeps its 'running' state and is run again at the next start.
            logger.exception("the embedded worker stopped on an unexpected error")
        finally:
            try:
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    def _run_next(self, loop: asyncio.AbstractEventLoop, context: TaskContext,
                  policy: RetryPolicy) -> float:
        """Run the oldest runnable task; else return how long to wait for one."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, name, payload, not_before FROM tasks WHERE state IN "
                "('queued', 'retry') ORDER BY seq LIMIT 1").fetchone()
        if row is None:
            return self.poll_s
        delay = row["not_before"] - time.time()
        if delay > 0:
            return min(delay, self.poll_s)
        outcome = loop.run_until_complete(run_attempt(
            row["name"], json.loads(row["payload"]), context, task_id=row["id"], policy=policy))
        if outcome.state == "retry":
            with self._lock:
                self._db.execute("UPDATE tasks SET not_before = ? WHERE id = ?",
                                 (time.time() + (outcome.retry_in or 0), row["id"]))
        return 0.0

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

