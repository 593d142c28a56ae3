"""Periodic tasks: a body a domain wants run every so often, while a setting asks for it.

A domain declares one beside its ``@task`` (``every("conversations.retention", DAY_S,
when=lambda s: s.retention_days > 0)``); whatever works the queue calls ``enqueue_due`` now and
then (the embedded worker does, every ``CHECK_S``). Each period's run is enqueued under the
idempotency key ``periodic:<task>:<period number>``, so any number of workers and restarts
queue it once per period; periods are counted from the Unix epoch (a daily task is due after
each midnight UTC, and at the first check after a start).
"""

from __future__ import annotations

import logging
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
