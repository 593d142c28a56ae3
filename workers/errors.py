"""Background-worker exceptions.

    ParleyError
    └── WorkerError
        ├── InvalidPayload           a task payload or change event that can never succeed
        │                            (dead-lettered at once, never retried)
        ├── UnknownTask              no task of that name
        ├── TaskTimeout              an attempt ran past its task's time limit (retried)
        ├── TaskInterrupted          every attempt died with its worker (dead-lettered)
        ├── DeadLetterNotFound       no dead letter with that id (404)
        ├── NotRetryable             a dead letter that names no task (a malformed event)
        ├── WorkerAlreadyRunning     another worker holds the embedded queue
        └── QueueUnavailable         the broker cannot be reached (also DependencyUnavailable)
"""

from __future__ import annotations

from core.errors import DependencyUnavailable, ParleyError


class WorkerError(ParleyError):
    code = "worker_error"


class InvalidPayload(WorkerError):
    status_code = 422
    code = "invalid_payload"


class UnknownTask(InvalidPayload):
    code = "unknown_task"


class TaskTimeout(WorkerError):
    code = "task_timeout"


class TaskInterrupted(WorkerError):
    code = "task_interrupted"


class DeadLetterNotFound(WorkerError):
    status_code = 404
    code = "dead_letter_not_found"


class NotRetryable(WorkerError):
    status_code = 409
    code = "dead_letter_not_retryable"


class WorkerAlreadyRunning(WorkerError):
    status_code = 409
    code = "worker_already_running"


class QueueUnavailable(WorkerError, DependencyUnavailable):
    code = "queue_unavailable"
