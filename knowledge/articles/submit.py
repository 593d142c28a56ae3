"""Handing the editor's changes to the workers, and following them there.

Every change (publish, delete, an entity saved or deleted) becomes a ``workers`` task: it goes
to Kafka's ``knowledge.changes`` when Kafka is configured (every consumer sees it, and the
consumer enqueues the task; the id handed back is then ``event:<id>``), else straight onto
the queue. Payloads are JSON-safe (a round trip through JSON before they leave), and an
article is checked with the parser the worker uses before it is handed over, so a publish the
worker would refuse is refused here, with nothing queued.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from core.config import Settings
from core.errors import NotFound, Unprocessable
from knowledge.articles.models import Article
from knowledge.articles.schemas import TaskPublic, TaskStatus
from knowledge.payloads import document_from_payload
from workers.errors import InvalidPayload
from workers.queue import TaskQueue, wait_for_change, wait_until_applied

logger = logging.getLogger(__name__)

EVENT_PREFIX = "event:"
EVENT_FOR_TASK = {"index_document": ("upsert", "article"), "delete_document": ("delete", "article"),
                  "upsert_entity": ("upsert", "entity"), "delete_entity": ("delete", "entity")}
"""The ``(op, kind)`` of the change event that stands for each task (see ``workers.kafka``)."""


def index_payload(article: Article) -> dict[str, Any]:
    """The ``index_document`` task payload for the article's latest version."""
    tags = list(article.tags)
    if article.kind == "faq" and "faq" not in tags:
        tags.append("faq")
    return {"doc_id": article.id, "title": article.title, "lang": article.lang, "tags": tags,
            "text": article.body, "source": "editor", "version": article.version}


def check_indexable(payload: dict[str, Any]) -> None:
    """``Unprocessable`` (``nothing_to_index``) for a payload the worker would refuse."""
    try:
        document_from_payload(payload)
    except InvalidPayload as exc:
        raise Unprocessable(f"Nothing to publish: {exc}.", code="nothing_to_index") from exc


async def submit(queue: TaskQueue, task: str, payload: dict[str, Any], *,
                 settings: Settings) -> TaskPublic:
    """Hand ``task`` to the workers: through Kafka when it is configured, else the queue.
    The returned id is what :func:`task_status` follows."""
    payload = json.loads(json.dumps(payload))
    if settings.kafka_bootstrap:
        from workers.kafka import publish_change

        op, kind = EVENT_FOR_TASK[task]
        event_id = await publish_change(settings, {"op": op, "kind": kind, "data": payload})
        logger.info("published %s to Kafka as event %s", task, event_id)
        return TaskPublic(task_id=f"{EVENT_PREFIX}{event_id}", state="queued")
    # No idempotency key: publishing the same version again after a delete must index again.
    task_id = await asyncio.to_thread(queue.enqueue, task, payload, key=None)
    logger.info("enqueued %s as %s", task, task_id)
    return TaskPublic(task_id=str(task_id), state="queued")


async def task_status(queue: TaskQueue, *, task_id: str) -> TaskStatus:
    """Where a handed-over change stands; ``NotFound`` (``task_not_found``) for an unknown id.

    A Kafka event is ``queued`` until a consumer has enqueued its task, then that task's."""
    if task_id.startswith(EVENT_PREFIX):
        key = await asyncio.to_thread(queue.task_for_key, task_id)
        if key is None:
            return TaskStatus(task_id=task_id, task="kafka event", state="queued", attempts=0,
                              error="")
        task_id = key
    status = await asyncio.to_thread(queue.status, task_id)
    if status is None:
        raise NotFound(f"No task {task_id!r}.", code="task_not_found")
    return TaskStatus(task_id=task_id, task=str(status.get("task", "")),
                      state=str(status["state"]), attempts=int(status.get("attempts") or 0),
                      error=str(status.get("error") or ""))


async def wait_until_final(queue: TaskQueue, task_id: str, *,
                           timeout_s: float) -> dict[str, Any]:
    """Wait until the change is done, skipped or dead; its status (``TimeoutError`` else)."""
    if task_id.startswith(EVENT_PREFIX):
        return await wait_for_change(queue, task_id.removeprefix(EVENT_PREFIX), timeout_s)
    return await wait_until_applied(queue, task_id, timeout_s)
