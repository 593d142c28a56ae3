"""The one base every background task shares.

A task body is an ``async def body(payload, ctx)`` making one service call with a JSON-safe
payload, registered with ``@task(name, ...)`` (``workers.registry``) in its domain's
``tasks`` module. Whatever runs it (the embedded SQLite queue, a Celery worker, a unit test)
goes through ``run_attempt`` (or ``run_inline`` in tests), so every task gets the same:

- time limit (``timeout_s``; cooperative: it fires at the body's next ``await``),
- retries with exponential backoff (``RetryPolicy``; ``InvalidPayload`` and the task's
  ``permanent`` errors are not retried), counting every attempt that *started*, so a task
  that keeps killing its worker is given up on too,
- dead-lettering after the last failed attempt: task, payload and error are kept in the
  ``Journal`` where admins list and retry them,
- logs naming the task, its id and the attempt (never the payload: it holds customer text),
- Prometheus ``parley_tasks_total{task,outcome}`` and ``parley_task_seconds{task}``,
- version gating (``versioned="doc_id"``): a change older than, or as old as, the version
  already applied to that document is skipped, under a per-document lock,
- a ``task.run`` span per attempt, continuing the trace of the request that enqueued it: the
  queues add its context to the payload (``with_trace``, under ``TRACE_KEY``), and the base
  takes it out again before the body sees the payload.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram

from core import tracing
from core.config import Settings
from workers.context import Payload, State, TaskContext
from workers.errors import InvalidPayload, TaskInterrupted, TaskTimeout
from workers.registry import REGISTRY, TaskSpec, get_task

logger = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000
TRACE_KEY = "_trace"  # the enqueuing request's W3C trace context, in the payload

TASKS = Counter("parley_tasks", "Background task attempts by outcome "
                "(done, skipped, retried, dead_lettered)", ["task", "outcome"])
TASK_SECONDS = Histogram("parley_task_seconds", "Time one background task attempt took",
                         ["task"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_s: float = 1.0
    backoff_cap_s: float = 300.0

    def delay(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1``: 1, 2, 4, 8 … backoff, capped."""
        return min(self.backoff_cap_s, self.backoff_s * 2.0 ** (attempt - 1))

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(max_attempts=max(1, settings.task_max_attempts),
                   backoff_s=settings.task_retry_backoff_s)


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


def with_trace(payload: Payload) -> Payload:
    """``payload`` with the current trace context under ``TRACE_KEY`` (unchanged when nothing
    is traced)."""
    carrier = tracing.inject()
    return {**payload, TRACE_KEY: carrier} if carrier and isinstance(payload, Mapping) \
        else payload


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
    return await execute(get_task(name, ctx.settings), json.loads(dumps_payload(payload)), ctx)


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
    carrier = payload.get(TRACE_KEY) if isinstance(payload, dict) else None
    if isinstance(payload, dict) and TRACE_KEY in payload:  # a copy: a retry keeps the context
        payload = {k: v for k, v in payload.items() if k != TRACE_KEY}
    with tracing.span("task.run", kind=tracing.SpanKind.CONSUMER,
                      parent=tracing.extract(carrier if isinstance(carrier, dict) else None),
                      attributes={"parley.task": name, "parley.task_id": task_id}) as span:
        outcome = await _attempt(name, payload, ctx, task_id=task_id, policy=policy)
        span.set_attributes({"parley.task.attempt": outcome.attempt,
                             "parley.task.outcome": outcome.state})
        if outcome.state in ("retry", "dead"):  # the error's type only: its text may quote data
            tracing.failed(span, outcome.error.split(":", 1)[0])
        return outcome


async def _attempt(name: str, payload: Any, ctx: TaskContext, *, task_id: str,
                   policy: RetryPolicy) -> Outcome:
    attempt = ctx.journal.begin(task_id, name)
    if attempt is None:  # at-least-once delivery: this task already finished
        logger.info("task %s id=%s delivered again after it finished; ignored", name, task_id,
                    extra=_fields(name, task_id, 0, "duplicate"))
        return Outcome("skipped", 0)
    started = time.perf_counter()
    try:
        if attempt > policy.max_attempts:  # earlier attempts died with their worker
            raise TaskInterrupted(f"interrupted {attempt - 1} times (its worker died or stopped)")
        spec = get_task(name, ctx.settings)
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
