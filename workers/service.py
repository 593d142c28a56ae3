"""What the CLI and the knowledge-base editor call: keyword-light entry points.

    run_worker(settings)          ``parley worker``: the Celery worker when a broker is
                                  configured, else the embedded queue's worker in the
                                  foreground, until SIGINT/SIGTERM
    consume_changes(settings)     ``parley kafka consume``: change events into the queue
    submit_change(settings, queue, event)
                                  the editor saving a change: published to Kafka when it is
                                  configured (the consumer enqueues it), else enqueued directly
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import uuid
from typing import Any

from core import tracing
from core.config import Settings
from workers.embedded import EmbeddedQueue
from workers.errors import WorkerAlreadyRunning
from workers.queue import TaskQueue, get_queue


def run_worker(settings: Settings, *, concurrency: int = 1) -> None:
    """Work the queue until SIGINT or SIGTERM (the Celery worker replaces this process)."""
    if settings.broker_url:
        from workers.celery_app import QUEUE

        os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", "workers.celery_app",
                                  "worker", "--loglevel", "INFO", "--queues", QUEUE,
                                  "--concurrency", str(concurrency)])
    tracing.configure(settings, service="parley-worker")  # off unless an OTLP endpoint is set
    queue = EmbeddedQueue(settings.var_dir / "queue.db", settings=settings)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    queue.start()  # WorkerAlreadyRunning if `parley run` already works this queue
    try:
        stop.wait()
    finally:
        queue.close()


def consume_changes(settings: Settings, *, assign: bool = False) -> None:
    """Read ``knowledge.changes`` into the queue until SIGINT or SIGTERM.

    With the embedded queue, this process also works the queue unless another one does.
    """
    from workers.kafka import consume

    tracing.configure(settings, service="parley-worker")
    queue = get_queue(settings)
    if isinstance(queue, EmbeddedQueue):
        try:
            queue.start()
        except WorkerAlreadyRunning:
            pass  # the API process (or `parley worker`) runs the tasks

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await consume(settings, queue, stop=stop, assign=assign)

    try:
        asyncio.run(main())
    finally:
        queue.close()


async def submit_change(settings: Settings, queue: TaskQueue, event: dict[str, Any]) -> str:
    """Apply an editor's change event (see ``workers.kafka``); the event id.

    With Kafka configured the event is published (every consumer sees it; the task is
    enqueued by the consumer), else its task is enqueued here under the same idempotency key.
    """
    from workers.kafka import publish_change, task_for_event

    event = {**event, "id": event.get("id") or uuid.uuid4().hex}
    task, payload = task_for_event(event)
    if settings.kafka_bootstrap:
        return await publish_change(settings, event)
    await asyncio.to_thread(queue.enqueue, task, payload, key=f"event:{event['id']}")
    return str(event["id"])
