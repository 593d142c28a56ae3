"""Periodic tasks: a body a domain wants run every so often, while a setting asks for it.

A domain declares one beside its ``@task`` (``every("conversations.retention", DAY_S,
when=lambda s: s.retention_days > 0)``); whatever works the queue calls ``enqueue_due`` now and
then: the embedded worker every ``CHECK_S`` in its loop, each Celery worker every ``CHECK_S``
on a ``PeriodicTimer`` thread (``workers.celery_app``). Each period's run is enqueued under the
idempotency key ``periodic:<task>:<period number>``, so any number of workers and restarts
queue it once per period; periods are counted from the Unix epoch (a daily task is due after
each midnight UTC, and at the first check after a start).

There is no Celery beat: a beat is one more process that must run exactly once (two queue
every task twice, none queue nothing), while the key lets every worker replica check and the
first one in each period win.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from core.config import Settings
from workers.context import Payload
from workers.registry import load_tasks

logger = logging.getLogger(__name__)
CHECK_S = 60.0


@dataclass(frozen=True)
class Periodic:
    task: str
    every_s: float
    when: Callable[[Settings], bool]


PERIODIC: dict[str, Periodic] = {}


class Enqueuer(Protocol):
    def enqueue(self, task: str, payload: Payload, *, key: str | None = None) -> str: ...


def every(task: str, every_s: float, *, when: Callable[[Settings], bool]) -> None:
    """Run ``task`` (with an empty payload) once every ``every_s`` seconds while ``when``."""
    PERIODIC[task] = Periodic(task, every_s, when)


def enqueue_due(queue: Enqueuer, settings: Settings, *, now: float | None = None) -> list[str]:
    """Enqueue this period's run of every enabled periodic task (a no-op for a period already
    queued); the task ids."""
    load_tasks(settings)
    now = time.time() if now is None else now
    ids = []
    for periodic in PERIODIC.values():
        if periodic.when(settings):
            key = f"periodic:{periodic.task}:{int(now // periodic.every_s)}"
            ids.append(queue.enqueue(periodic.task, {}, key=key))
    return ids


class PeriodicTimer:
    """Calls ``enqueue_due`` on a thread of its own: now, then every ``check_s`` until
    ``stop()``. ``queue`` builds the queue on the thread's first check (after a fork, in the
    process that runs the thread); its ``close()``, if any, is called at the stop."""

    def __init__(self, queue: Callable[[], Enqueuer], settings: Settings, *,
                 check_s: float = CHECK_S) -> None:
        self.settings = settings
        self.check_s = check_s
        self._make_queue = queue
        self._queue: Enqueuer | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, *, now: float | None = None) -> list[str]:
        """One check: the ids ``enqueue_due`` returned; none when it failed (logged)."""
        try:
            if self._queue is None:
                self._queue = self._make_queue()
            return enqueue_due(self._queue, self.settings, now=now)
        except Exception:  # a broken schedule or an unreachable broker must not stop the timer
            logger.exception("could not enqueue the periodic tasks")
            return []

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="parley-periodic", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # still in a check: leave it its queue
                logger.warning("the periodic timer is still checking after %s s", timeout)
                return
            self._thread = None
        queue, self._queue = self._queue, None
        close = getattr(queue, "close", None)
        if close is not None:
            close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.check()
            self._stopping.wait(self.check_s)
