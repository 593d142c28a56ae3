"""The embedded task queue: one SQLite file and a worker thread in the app's own process.

The default when no broker is configured. Tasks are stored before ``enqueue`` returns, so
work survives a restart; they run one at a time in the order they were enqueued (a task
waiting for its retry holds back the ones behind it, so changes to one thing never overtake
each other). A task that was running when the process died is run again at the next
``start()`` (at-least-once; the bodies are idempotent, so it lands once). One worker per file:
``start()`` takes an exclusive lock on ``<file>.lock``. Other processes (the CLI) may enqueue
into the same file; the worker polls for their tasks.

The same file (``workers.sqlite_journal``) is the queue's ``Journal``: task states, dead
letters and applied versions.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import IO, Any

from core.config import Settings
from workers.base import RetryPolicy, dumps_payload, run_attempt, with_trace
from workers.context import Payload, Resources, TaskContext
from workers.dead_letters import retry_dead_letter
from workers.errors import QueueUnavailable, WorkerAlreadyRunning
from workers.registry import get_task
from workers.schedule import CHECK_S, enqueue_due
from workers.sqlite_journal import SQLiteJournal

logger = logging.getLogger(__name__)


class EmbeddedQueue:
    """A persistent, ordered task queue in SQLite with an in-process worker thread.

    ``resources``: what its tasks share with this process (see ``workers.context``).
    """

    def __init__(self, path: Path, *, settings: Settings, policy: RetryPolicy | None = None,
                 resources: Resources | None = None, poll_s: float = 0.5,
                 keep_finished_s: float = 7 * 24 * 3600) -> None:
        self.path = Path(path)
        self.settings = settings
        self.policy = policy or RetryPolicy.from_settings(settings)
        self.resources = resources or Resources()
        self.poll_s = poll_s
        self.keep_finished_s = keep_finished_s
        self.journal = SQLiteJournal(self.path)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lockfile: IO[str] | None = None

    # -- the queue --------------------------------------------------------------------------

    def enqueue(self, task: str, payload: Payload, *, key: str | None = None) -> str:
        get_task(task, self.settings)
        body = dumps_payload(with_trace(payload))
        try:
            return self.journal.add(task, body, key=key)
        except sqlite3.Error as exc:
            raise QueueUnavailable(f"cannot write to {self.path} ({exc})") from exc
        finally:
            self._wake.set()

    def task_for_key(self, key: str) -> str | None:
        return self.journal.task_for_key(key)

    def status(self, task_id: str) -> dict[str, Any] | None:
        return self.journal.status(task_id)

    def pending(self) -> int:
        return self.journal.pending()

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.journal.dead_letters()

    def dead_letter(self, task: str, payload: Any, error: str, *, key: str | None = None) -> str:
        return self.journal.add_dead_letter(task=task, payload=payload, error=error,
                                            attempts=0, key=key)

    def retry_dead_letter(self, id: str) -> None:
        retry_dead_letter(self.journal, id, settings=self.settings)
        self._wake.set()

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
        interrupted = self.journal.recover(keep_finished_s=self.keep_finished_s)
        if interrupted:
            logger.warning("re-running %d task(s) interrupted by a stop or crash", interrupted)
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
            self.journal.close()

    def drain(self, timeout: float = 30.0) -> None:
        """Block until nothing is pending (for the CLI and tests); ``TimeoutError`` else."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.pending()} task(s) still pending after {timeout} s")
            time.sleep(0.02)

    def _work(self) -> None:
        loop = asyncio.new_event_loop()
        context = TaskContext(self.settings, journal=self.journal, resources=self.resources)
        next_check = 0.0
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                next_check = self._schedule(next_check)
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

    def _schedule(self, next_check: float) -> float:
        """Enqueue the periodic tasks that are due (``workers.schedule``), every ``CHECK_S``;
        when to look again."""
        now = time.monotonic()
        if now < next_check:
            return next_check
        try:
            enqueue_due(self, self.settings)
        except Exception:  # a broken schedule must not stop the queue
            logger.exception("could not enqueue the periodic tasks")
        return now + CHECK_S

    def _run_next(self, loop: asyncio.AbstractEventLoop, context: TaskContext,
                  policy: RetryPolicy) -> float:
        """Run the oldest runnable task; else return how long to wait for one."""
        row = self.journal.next_task()
        if row is None:
            return self.poll_s
        delay = float(row["not_before"]) - time.time()
        if delay > 0:
            return min(delay, self.poll_s)
        outcome = loop.run_until_complete(run_attempt(
            row["name"], json.loads(row["payload"]), context, task_id=row["id"], policy=policy))
        if outcome.state == "retry":
            self.journal.retry_at(row["id"], time.time() + (outcome.retry_in or 0))
        return 0.0
