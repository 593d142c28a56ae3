"""``parley worker``, ``parley kafka`` and ``parley tasks``: the background workers.

Three apps because the shell mounts them at three places: ``worker_app`` holds the top-level
``worker`` command, ``kafka_app`` and ``tasks_app`` are sub-commands of their own.
"""

from __future__ import annotations

from typing import Annotated

import typer

from core.cli import console, errors
from core.config import get_settings
from core.logging import configure_logging

worker_app = typer.Typer()
kafka_app = typer.Typer(help="Knowledge changes over Kafka.")
tasks_app = typer.Typer(help="Background tasks: dead letters and retries.")


@worker_app.command()
def worker(concurrency: Annotated[int, typer.Option(help="Celery worker processes.")] = 1) -> None:
    """Run the background worker: Celery when PARLEY_BROKER_URL is set, else the embedded queue."""
    from workers.service import run_worker

    configure_logging()
    run_worker(get_settings(), concurrency=concurrency)


@kafka_app.command("consume")
def kafka_consume(assign: Annotated[bool, typer.Option(
        help="Read every partition without joining the consumer group.")] = False) -> None:
    """Read knowledge.changes into the task queue until Ctrl-C."""
    from workers.service import consume_changes

    configure_logging()
    consume_changes(get_settings(), assign=assign)


@tasks_app.command("dead")
def tasks_dead() -> None:
    """List dead-lettered tasks."""
    from workers.queue import get_queue

    queue = get_queue(get_settings())
    try:
        for d in queue.dead_letters():
            console.print(f"{d['id']}  {d['task']}  attempts={d['attempts']}  {d['error']}")
    finally:
        queue.close()


@tasks_app.command("retry")
def tasks_retry(letter_id: str) -> None:
    """Queue a dead-lettered task again."""
    from workers.queue import get_queue

    queue = get_queue(get_settings())
    try:
        with errors():  # an unknown or not retryable letter: one line, exit code 2
            queue.retry_dead_letter(letter_id)
    finally:
        queue.close()
