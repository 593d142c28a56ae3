"""The one base every background task shares.

A task body is an ``async def body(payload, ctx)`` making one service call with a JSON-safe
payload, registered with ``@task(name, ...)``. Whatever runs it (the embedded SQLite queue,
a Celery worker, a unit test) goes through ``run_attempt`` (or ``run_inline`` in tests), so
every task gets the same:

- time limit (``timeout_s``; cooperative: it fires at the body's next ``await``),
- retries with exponential backoff (``RetryPolicy``; ``InvalidPayload`` and the task's
  ``permanent`` errors are not retried), counting every attempt that *started*, so a task
  that keeps killing its worker is given up on too,
- dead-lettering after the last failed attempt: task, payload and error are kept in the
  ``Journal`` where admins list and retry them,
- logs naming the task, its id and the attempt (never the payload: it holds customer text),
- Prometheus ``parley_tasks_total{task,outcome}`` and ``parley_task_seconds{task}``,
- version gating (``versioned="doc_id"``): a change older than, or as old as, the version
  already applied to that document is skipped, under a per-document lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from prometheus_client import Counter, Histogram

from workers.errors import InvalidPayload, TaskInterrupted, TaskTimeout, UnknownTask

logger = logging.getLogger(__name__)

Payload = dict[str, Any]
State = Literal["queued", "running", "retry", "done", "skipped", "dead"]
FINAL_STATES: frozenset[str] = frozenset({"done", "skipped", "dead"})
MAX_ERROR_CHARS = 2000

TASKS = Counter("parley_tasks", "Background task attempts by outcome "
                "(done, skipped, retried, dead_lettered)", ["task", "outcome"])
TASK_SECONDS = Histogram("parley_task_seconds", "Time one background task attempt took",
                         ["task"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))


class Journal(Protocol):
    """Where the base records what happened; the queue's own store (SQLite or Redis)."""

    def begin(self, task_id: str, task: str) -> int | None:
        """Mark the task running; return its attempt number (1 for the first start), or None
        when the task has already finished (a message the broker delivered again)."""
        ...

    def finish(self, task_id: str, state: State, *, error: str = "") -> None:
        """Record the attempt's outcome; a task that has already finished keeps its state."""
        ...

    def add_dead_letter(self, *, task: str, payload: Any, error: str, attempts: int,
                        task_id: str | None = None, key: str | None = None) -> str:
        """Keep a failed task (or an unusable event) for admins; ``key`` makes it once-only."""
        ...

    def applied_version(self, doc_id: str) -> int | None: ...

    def set_applied_version(self, doc_id: str, version: int | None) -> None:
        """Record the version now applied (``None``: forget, the next change applies)."""
        ...

    def lock(self, name: str, timeout_s: float, *, owner: str | None = None
             ) -> AbstractContextManager[object]:
        """Held while a versioned change is applied; ``owner`` is the task id."""
        ...


@dataclass
class TaskContext:
    """What a task body may use besides its payload."""

    settings: Any  # core.config.Settings
    journal: Journal
    embedder: Any = None  # knowledge.embeddings.Embedder; the shared E5 model when None

    def get_embedder(self) -> Any:
        if self.embedder is None:
            self.embedder = shared_embedder()
        return self.embedder


_EMBEDDER: Any = None


def shared_embedder() -> Any:
    """One E5 model per process (loading is cheap, but its memory is not)."""
    global _EMBEDDER
    if _EMBEDDER is None:
        from knowledge.embeddings import E5Embedder

        _EMBEDDER = E5Embedder()
    return _EMBEDDER


Body = Callable[[Payload, TaskContext], Awaitable[object]]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    body: Body
    timeout_s: float
    versioned: str | None = None
    permanent: tuple[type[BaseException], ...] = ()


REGISTRY: dict[str, TaskSpec] = {}


def task(name: str, *, timeout_s: float = 120.0, versioned: str | None = None,
         permanent: tuple[type[BaseException], ...] = ()) -> Callable[[Body], Body]:
    """Register a task body under ``name``; the body itself is returned unchanged."""

    def register(body: Body) -> Body:
        REGISTRY[name] = TaskSpec(name, body, timeout_s, versioned, permanent)
        return body

    return register


def get_task(name: str) -> TaskSpec:
    import workers.tasks  # noqa: F401  (registers the bodies)

    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownTask(f"no task named {name!r}") from None


def task_names() -> list[str]:
    import workers.tasks  # noqa: F401

    return sorted(REGISTRY)


def option(settings: Any, name: str, default: Any) -> Any:
    """A worker setting: ``settings.<name>``, else ``PARLEY_<NAME>``, else ``default``.

    The environment fallback only matters until ``Settings`` declares the field.
    """
    value = getattr(settings, name, None)
    if value is None:
        raw = os.environ.get(f"PARLEY_{name.upper()}")
        if raw is None:
            value = default
        elif isinstance(default, bool):
            value = raw.strip().lower() in {"1", "true", "yes", "on"}
        else:
            value = type(default)(raw)
    return value


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_s: float = 1.0
    backoff_cap_s: float = 300.0

    def delay(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1``: 1, 2, 4, 8 … backoff, capped."""
        return min(self.backoff_cap_s, self.backoff_s * 2 ** (attempt - 1))

    @classmethod
    def from_settings(cls, settings: Any) -> RetryPolicy:
        return cls(max_attempts=max(1, int(option(settings, "task_max_attempts", 5))),
                   backoff_s=float(option(settings, "task_retry_backoff_s", 1.0)))


@dataclass(frozen=True)
class Outcome:
    state: State
    attempt: int
    retry_in: float | None = None
    error: str = ""


def dumps_payload(payload: Mapping[str, Any]) -> str:
    """The payload as JSON, or ``InvalidPayload`` if it is not a JSON-safe object."""
    if not isinstance(payload, Mapping):
        raise InvalidPayload(f"a task payload is a JSON object, not {type(payload).__name__}")
    try:
        return json.dumps(payload, ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(f"the payload is not JSON-safe: {exc}") from None


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_CHARS]


def _version(payload: Payload) -> int | None:
    version = payload.get("version")
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InvalidPayload("'version' must be a non-negative integer")
    return version


async def execute(spec: TaskSpec, payload: Payload, ctx: TaskContext, *,
                  task_id: str | None = None) -> State:
    """Run the body once under its time limit and version gate: ``done`` or ``skipped``."""
    try:
        async with asyncio.timeout(spec.timeout_s):
            if spec.versioned is None:
                await spec.body(payload, ctx)
                return "done"
            doc_id = payload.get(spec.versioned)
            if not isinstance(doc_id, str) or not doc_id:
                raise InvalidPayload(f"{spec.versioned!r} must be a non-empty string")
            version = _version(payload)
            with ctx.journal.lock(f"{spec.versioned}:{doc_id}", spec.timeout_s, owner=task_id):
                applied = ctx.journal.applied_version(doc_id)
                if version is not None and applied is not None and applied >= version:
                    return "skipped"
                await spec.body(payload, ctx)
                ctx.journal.set_applied_version(doc_id, version)
                return "done"
    except TimeoutError:
        raise TaskTimeout(f"{spec.name} took longer than {spec.timeout_s:g} s") from None


async def run_inline(name: str, payload: Payload, ctx: TaskContext) -> State:
    """One attempt as a worker would run it, after a JSON round trip; errors propagate."""
    return await execute(get_task(name), json.loads(dumps_payload(payload)), ctx)


def _fields(task: str, task_id: str, attempt: int, outcome: str,
            exc: BaseException | None = None) -> dict[str, Any]:
    """Structured log fields (for a JSON formatter); the error's type, never the payload."""
    fields: dict[str, Any] = {"task": task, "task_id": task_id, "attempt": attempt,
                              "outcome": outcome}
    if exc is not None:
        fields["error_type"] = type(exc).__name__
    return fields


async def run_attempt(name: str, payload: Any, ctx: TaskContext, *, task_id: str,
                      policy: RetryPolicy) -> Outcome:
    """One attempt with everything the base adds; the caller reschedules on ``retry``."""
    attempt = ctx.journal.begin(task_id, name)
    if attempt is None:  # at-least-once delivery: this task already finished
        logger.info("task %s id=%s delivered again after it finished; ignored", name, task_id,
                    extra=_fields(name, task_id, 0, "duplicate"))
        return Outcome("skipped", 0)
    started = time.perf_counter()
    try:
        if attempt > policy.max_attempts:  # earlier attempts died with their worker
            raise TaskInterrupted(f"interrupted {attempt - 1} times (its worker died or stopped)")
        spec = get_task(name)
        logger.info("task %s id=%s attempt %d/%d started", name, task_id, attempt,
                    policy.max_attempts, extra=_fields(name, task_id, attempt, "started"))
        if not isinstance(payload, dict):
            raise InvalidPayload(f"a task payload is a JSON object, not {type(payload).__name__}")
        state = await execute(spec, payload, ctx, task_id=task_id)
    except Exception as exc:
        error = describe(exc)
        permanent = isinstance(exc, InvalidPayload) or (
            name in REGISTRY and isinstance(exc, REGISTRY[name].permanent))
        if not permanent and attempt < policy.max_attempts:
            delay = policy.delay(attempt)
            ctx.journal.finish(task_id, "retry", error=error)
            TASKS.labels(name, "retried").inc()
            logger.warning("task %s id=%s attempt %d/%d failed (%s); retry in %.1f s", name,
                           task_id, attempt, policy.max_attempts, type(exc).__name__, delay,
                           extra=_fields(name, task_id, attempt, "retried", exc))
            return Outcome("retry", attempt, retry_in=delay, error=error)
        ctx.journal.add_dead_letter(task=name, payload=payload, error=error, attempts=attempt,
                                    task_id=task_id)
        ctx.journal.finish(task_id, "dead", error=error)
        TASKS.labels(name, "dead_lettered").inc()
        logger.error("task %s id=%s dead-lettered after attempt %d (%s)", name, task_id,
                     attempt, type(exc).__name__,
                     extra=_fields(name, task_id, attempt, "dead_lettered", exc))
        return Outcome("dead", attempt, error=error)
    finally:
        TASK_SECONDS.labels(name).observe(time.perf_counter() - started)
    ctx.journal.finish(task_id, state)
    TASKS.labels(name, state).inc()
    logger.info("task %s id=%s attempt %d %s in %.2f s", name, task_id, attempt, state,
                time.perf_counter() - started, extra=_fields(name, task_id, attempt, state))
    return Outcome(state, attempt)
