"""What a task body is given: its settings, the queue's journal and the worker's resources.

- ``Journal``: where the shared base records what happened (the queue's own store:
  ``workers.sqlite_journal`` or ``workers.redis_journal``).
- ``Resources``: objects the tasks of one worker share, such as a loaded model. A domain
  declares one as a ``Resource`` with the function that makes it; the first task that asks
  makes it, the others get the same object. A process that already holds one (the API's
  embedder) hands it to its embedded queue with ``provide``, so it is not loaded twice.

Nothing here knows a domain: the workers run the bodies that ``workers.registry`` loads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

from core.config import Settings

Payload = dict[str, Any]
State = Literal["queued", "running", "retry", "done", "skipped", "dead"]
FINAL_STATES: frozenset[str] = frozenset({"done", "skipped", "dead"})
T = TypeVar("T")


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


@dataclass(frozen=True, eq=False)
class Resource(Generic[T]):
    """A kind of shared object: its name (for messages) and how to make one."""

    name: str
    make: Callable[[], T]


class Resources:
    """The shared objects of one worker, each made once, on first use (thread-safe)."""

    def __init__(self) -> None:
        self._objects: dict[Resource[Any], object] = {}
        self._lock = threading.Lock()

    def provide(self, resource: Resource[T], value: T) -> None:
        """Use ``value`` instead of making one (an object this process already holds)."""
        with self._lock:
            self._objects[resource] = value

    def get(self, resource: Resource[T]) -> T:
        with self._lock:
            if resource not in self._objects:
                self._objects[resource] = resource.make()
            return cast(T, self._objects[resource])


@dataclass
class TaskContext:
    """What a task body may use besides its payload."""

    settings: Settings
    journal: Journal
    resources: Resources = field(default_factory=Resources)
