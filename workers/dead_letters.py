"""Retrying a dead letter: the one implementation every queue's ``retry_dead_letter`` calls.

A letter is retried only if it names a registered task and carries a task payload (a
malformed Kafka event does neither: ``NotRetryable``). Its task is queued again under its
old id (a new one if it had none) with a fresh set of attempts, and the letter is removed;
of two admins retrying the same letter at once, one gets ``DeadLetterNotFound``.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from core.config import Settings
from workers.context import Payload
from workers.errors import DeadLetterNotFound, NotRetryable, UnknownTask
from workers.registry import get_task


class DeadLetterStore(Protocol):
    def dead_letters(self) -> list[dict[str, Any]]: ...

    def requeue_dead_letter(self, letter_id: str, *, task_id: str, task: str,
                            payload: Payload) -> bool:
        """Remove the letter and queue its task; False if the letter was already gone."""
        ...


def retry_dead_letter(store: DeadLetterStore, letter_id: str, *, settings: Settings) -> None:
    letter = next((d for d in store.dead_letters() if d["id"] == letter_id), None)
    if letter is None:
        raise DeadLetterNotFound(f"no dead letter {letter_id!r}")
    try:
        get_task(letter["task"], settings)
    except UnknownTask:
        raise NotRetryable(f"dead letter {letter_id!r} names no task ({letter['task']})") \
            from None
    if not isinstance(letter["payload"], dict):
        raise NotRetryable(f"dead letter {letter_id!r} has no task payload")
    if not store.requeue_dead_letter(letter_id, task_id=letter["task_id"] or uuid.uuid4().hex,
                                     task=letter["task"], payload=letter["payload"]):
        raise DeadLetterNotFound(f"dead letter {letter_id!r} was just taken")
