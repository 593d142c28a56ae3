"""The Celery queue: tasks run by ``celery -A workers.celery_app worker`` against Redis.

Used when ``PARLEY_BROKER_URL`` is set (a ``redis://`` URL). One Celery task per task body
(``parley.<name>``), each running the shared base (``workers.base.run_attempt``), so retries,
backoff, dead letters, logs and metrics are the same as in the embedded queue. Messages are
acknowledged after the task finished (``acks_late``) and put back when the worker running
them dies (``task_reject_on_worker_lost``; when the whole worker dies, Redis hands them out
again once ``PARLEY_TASK_VISIBILITY_TIMEOUT_S`` has passed since delivery, so keep that above
the longest task). Task states, idempotency keys, dead letters and applied document versions
live in the same Redis (``workers.redis_journal``).

Periodic tasks (``workers.schedule``): every worker's main process runs a ``PeriodicTimer``
(the bootstep ``PeriodicStep``) that enqueues the due ones through a ``CeleryQueue`` under
their per-period idempotency key, so any number of worker replicas queue each run once; no
``celery beat`` is needed, and none should run beside the workers.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery, bootsteps

from core import tracing
from core.config import Settings
from workers.base import RetryPolicy, dumps_payload, run_attempt, with_trace
from workers.context import Payload, Resources, TaskContext
from workers.dead_letters import retry_dead_letter
from workers.errors import QueueUnavailable
from workers.redis_journal import RedisJournal
from workers.registry import REGISTRY, get_task, task_names
from workers.schedule import PeriodicTimer

QUEUE = "parley"
HARD_LIMIT_MARGIN_S = 60


def broker_url(settings: Settings) -> str:
    url = settings.broker_url
    if not url.startswith(("redis://", "rediss://")):
        raise ValueError("PARLEY_BROKER_URL must be a redis:// URL (dead letters, keys and "
                         f"task states are kept in Redis), not {url.split(':', 1)[0]!r}")
    return url


def create_app(settings: Settings) -> Celery:
    url = broker_url(settings)
    visibility_s = settings.task_visibility_timeout_s
    app = Celery("parley", broker=url, backend=settings.result_backend or url,
                 set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility_s,
            # Look for messages of dead workers often enough for a short visibility timeout.
            "unacked_restore_interval": max(1, min(10, visibility_s // 4)),
            "unacked_restore_throttle": 1,
        },
    )
    policy = RetryPolicy.from_settings(settings)
    journals: dict[str, RedisJournal] = {}
    resources = Resources()  # one set per pool process: filled on first use, after the fork

    def context() -> TaskContext:
        if "journal" not in journals:  # made in the pool process, after the fork
            journals["journal"] = RedisJournal(redis.Redis.from_url(url))
        return TaskContext(settings, journal=journals["journal"], resources=resources)

    for name in task_names(settings):
        _register(app, name, policy, context)
    app.steps["worker"].add(_periodic_step(settings))
    return app


class PeriodicStep(bootsteps.StartStopStep):
    """A worker bootstep: the ``PeriodicTimer`` of this worker, started after the pool (so
    before the consumer, which starts last) and stopped with the worker."""

    name = "parley.periodic"
    requires = ("celery.worker.components:Pool",)
    settings: Settings

    def create(self, parent: Any) -> PeriodicTimer:
        # A queue with an app of its own: the worker's app is not for other threads (under
        # the event loop its clock has a dummy lock).
        settings = self.settings
        return PeriodicTimer(lambda: CeleryQueue(settings), settings)


def _periodic_step(settings: Settings) -> type[PeriodicStep]:
    """``PeriodicStep`` for ``settings`` (Celery instantiates steps itself)."""
    return type("PeriodicStep", (PeriodicStep,), {"settings": settings, "name": PeriodicStep.name,
                                                  "__module__": __name__})


def _register(app: Celery, name: str, policy: RetryPolicy,
              context: Callable[[], TaskContext]) -> None:
    def run(self: Any, payload: Any) -> str:
        outcome = asyncio.run(run_attempt(name, payload, context(), task_id=self.request.id,
                                          policy=policy))
        if outcome.state == "retry":
            raise self.retry(countdown=outcome.retry_in)
        return outcome.state

    run.__name__ = name.replace(".", "_")  # Celery builds `def <name>(...)`: an identifier
    # Not shared: a second app in the process (the periodic timer's queue) registers its own.
    app.task(name=f"parley.{name}", bind=True, acks_late=True, reject_on_worker_lost=True,
             max_retries=None, time_limit=REGISTRY[name].timeout_s + HARD_LIMIT_MARGIN_S,
             shared=False)(run)


class CeleryQueue:
    """The ``TaskQueue`` for API and CLI processes: enqueue into Celery, read the journal."""

    def __init__(self, settings: Settings, *, app: Celery | None = None) -> None:
        self.settings = settings
        self.app = app or create_app(settings)
        self.journal = RedisJournal(redis.Redis.from_url(broker_url(settings)))

    def enqueue(self, task: str, payload: Payload, *, key: str | None = None) -> str:
        get_task(task, self.settings)
        body = json.loads(dumps_payload(with_trace(payload)))
        task_id = uuid.uuid4().hex
        try:
            if key is not None:
                owner = self.journal.claim_key(key, task_id)
                if owner != task_id:
                    return owner
            self.journal.queued(task_id, task)
            self.app.send_task(f"parley.{task}", args=[body], task_id=task_id, queue=QUEUE)
        except (redis.RedisError, OSError) as exc:
            self._undo(task_id, key)
            raise QueueUnavailable(f"the task broker is unreachable ({type(exc).__name__})") \
                from exc
        except Exception:
            self._undo(task_id, key)
            raise
        return task_id

    def _undo(self, task_id: str, key: str | None) -> None:
        try:
            self.journal.forget(task_id)
            if key is not None:
                self.journal.release_key(key, task_id)
        except redis.RedisError:
            pass

    def task_for_key(self, key: str) -> str | None:
        return self.journal.task_for_key(key)

    def status(self, task_id: str) -> dict[str, Any] | None:
        return self.journal.status(task_id)

    def pending(self) -> int:
        return self.journal.pending()

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.journal.dead_letters()

    def dead_letter(self, task: str, payload: Any, error: str, *, key: str | None = None) -> str:
        return self.journal.add_dead_letter(task=task, payload=payload, error=error, attempts=0,
                                            key=key)

    def retry_dead_letter(self, id: str) -> None:
        retry_dead_letter(self, id, settings=self.settings)

    def requeue_dead_letter(self, letter_id: str, *, task_id: str, task: str,
                            payload: Payload) -> bool:
        if self.journal.take_dead_letter(letter_id) is None:
            return False
        self.journal.queued(task_id, task)
        self.app.send_task(f"parley.{task}", args=[payload], task_id=task_id, queue=QUEUE)
        return True

    def close(self) -> None:
        self.journal.redis.close()


def __getattr__(name: str) -> Celery:
    """``celery -A workers.celery_app worker`` finds ``app``, built from the settings then."""
    if name in ("app", "celery"):
        from core.config import get_settings

        settings = get_settings()
        tracing.configure(settings, service="parley-worker")  # the worker process
        globals()["app"] = built = create_app(settings)
        return built
    raise AttributeError(name)
