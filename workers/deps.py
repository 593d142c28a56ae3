"""Dependencies of the workers' admin routes; tests swap them with ``app.dependency_overrides``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from workers.queue import TaskQueue


def get_task_queue(request: HTTPConnection) -> TaskQueue:
    """The queue the app built at start-up (``web.app``'s lifespan)."""
    queue: TaskQueue = request.app.state.task_queue
    return queue


TaskQueueDep = Annotated[TaskQueue, Depends(get_task_queue)]
