"""Admin view of background work: dead-lettered tasks with their errors, and retrying one.

Neither route opens a database session: dead letters live in the queue's own journal.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel

from staff.deps import AdminAgent
from workers.deps import TaskQueueDep

router = APIRouter(prefix="/api/v1/admin/tasks", tags=["admin"])


class DeadLetterPublic(BaseModel):
    id: str
    task: str
    attempts: int
    error: str
    created: Any
    payload: Any


@router.get("/dead", response_model=list[DeadLetterPublic])
async def dead_letters(_: AdminAgent, queue: TaskQueueDep) -> list[dict[str, Any]]:
    """Tasks given up after their last attempt, newest last, with the error that ended them."""
    return await asyncio.to_thread(queue.dead_letters)


@router.post("/dead/{letter_id}/retry", status_code=status.HTTP_202_ACCEPTED,
             responses={404: {"description": "`dead_letter_not_found`"},
                        409: {"description": "`dead_letter_not_retryable`"}})
async def retry(letter_id: str, _: AdminAgent, queue: TaskQueueDep) -> dict[str, str]:
    """Queue a dead-lettered task again (its errors map to 404/409 by the workers' tree)."""
    await asyncio.to_thread(queue.retry_dead_letter, letter_id)
    return {"status": "queued"}
