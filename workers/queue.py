"""What Parley asks of a task queue, and the queue the settings ask for.

``get_queue(settings)``: Celery (``workers.celery_app.CeleryQueue``) when a broker URL is
configured, else the embedded SQLite queue at ``<var_dir>/queue.db``. Both run every task
through the shared base (``workers.base``): retries with backoff, dead letters, metrics.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from core.config import Settings
from workers.context import FINAL_STATES, Payload, Resources
from workers.embedded import EmbeddedQueue

__all__ = ["EmbeddedQueue", "TaskQueue", "get_queue", "wait_for_change", "wait_until_applied"]


class TaskQueue(Protocol):
    """Tasks in, run in the background; what failed for good is kept as a dead letter."""

    def enqueue(self, task: str, payload: Payload, *, key: str | None = None) -> str:
        """Queue ``task`` with a JSON-safe payload; return the task id.

        ``key`` is an idempotency key (``f"{doc_id}:{version}"``, a change event's id): a key
        seen before returns the first task's id and queues nothing.
        """
        ...

    def task_for_key(self, key: str) -> str | None:
        """The id of the task enqueued under ``key``, if any (and not yet expired)."""
        ...

    def status(self, task_id: str) -> dict[str, Any] | None:
        """``{"id", "task", "state", "attempts", "error"}``; state is queued, running, retry,
        done, skipped (an older version than the one applied) or dead (dead-lettered)."""
        ...

    def dead_letters(self) -> list[dict[str, Any]]:
        """``{"id", "task", "task_id", "payload", "error", "attempts", "created"}``, oldest
        first."""
        ...

    def dead_letter(self, task: str, payload: Any, error: str, *, key: str | None = None) -> str:
        """Keep something that cannot become a task (a malformed event); ``key``: once only."""
        ...

    def retry_dead_letter(self, id: str) -> None:
        """Queue the dead letter's task again with a fresh set of attempts."""
        ...

    def pending(self) -> int:
        """Tasks queued, waiting for a retry or running."""
        ...

    def close(self) -> None: ...


def get_queue(settings: Settings, *, resources: Resources | None = None) -> TaskQueue:
    """``resources``: what the embedded queue's tasks share with this process (a Celery
    queue's tasks run in its worker processes, which make their own)."""
    if settings.broker_url:
        from workers.celery_app import CeleryQueue

        return CeleryQueue(settings)
    return EmbeddedQueue(settings.var_dir / "queue.db", settings=settings, resources=resources)


async def wait_until_applied(queue: TaskQueue, task_id: str, timeout_s: float = 60.0,
                             *, poll_s: float = 0.02) -> dict[str, Any]:
    """Wait until the task is done, skipped or dead; its status. ``TimeoutError`` else."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = await asyncio.to_thread(queue.status, task_id)
        if status is not None and status["state"] in FINAL_STATES:
            return status
        if time.monotonic() > deadline:
            state = status["state"] if status else "unknown"
            raise TimeoutError(f"task {task_id} still {state} after {timeout_s} s")
        await asyncio.sleep(poll_s)


async def wait_for_change(queue: TaskQueue, event_id: str, timeout_s: float = 60.0,
                          *, poll_s: float = 0.02) -> dict[str, Any]:
    """Wait until a change event (``workers.service.submit_change``) was applied: first for
    its task to be enqueued (by the Kafka consumer, possibly), then for the task."""
    deadline = time.monotonic() + timeout_s
    while (task_id := await asyncio.to_thread(queue.task_for_key, f"event:{event_id}")) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"change {event_id} was not enqueued after {timeout_s} s")
        await asyncio.sleep(poll_s)
    return await wait_until_applied(queue, task_id, max(0.0, deadline - time.monotonic()),
                                    poll_s=poll_s)
