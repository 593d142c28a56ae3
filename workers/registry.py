"""Task bodies by name.

A domain registers its bodies with ``@task(name, ...)`` in its own ``tasks`` module
(``knowledge.tasks``, ``nlu.tasks``). The workers import no domain: ``get_task`` and
``task_names`` first import the modules ``Settings.task_modules`` lists (like Celery's
``include``), whose decorators fill ``REGISTRY``.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.config import Settings
from workers.context import Payload, TaskContext
from workers.errors import UnknownTask

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
    """Register a task body under ``name``; the body itself is returned unchanged.

    ``versioned`` names the payload field holding a document id: the base applies changes to
    one document in version order (see ``workers.base``). ``permanent`` errors are not retried.
    """

    def register(body: Body) -> Body:
        REGISTRY[name] = TaskSpec(name, body, timeout_s, versioned, permanent)
        return body

    return register


def load_tasks(settings: Settings) -> None:
    """Import the modules ``settings.task_modules`` lists (each once); their bodies register."""
    for module in settings.task_modules:
        importlib.import_module(module)


def get_task(name: str, settings: Settings) -> TaskSpec:
    load_tasks(settings)
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownTask(f"no task named {name!r}") from None


def task_names(settings: Settings) -> list[str]:
    load_tasks(settings)
    return sorted(REGISTRY)
