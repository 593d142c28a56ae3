"""Admin view of background work: dead-lettered tasks with their errors, and retrying one."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel

from staff.deps import AdminAgent

router = APIRouter(prefix="/api/v1/admin/tasks", tags=["admin"])


class DeadLetterPublic(BaseModel):
    id: str
    task: str
    attempts: int
    error: str
    created: Any
    payload: Any


@router.get("/dead", response_model=list[DeadLetterPublic])
async def dead_letters(_: AdminAgent, request: Request) -> list[dict[str, Any]]:
    """Tasks given up after their last attempt, newest last, with the error that ended them."""
    return await asyncio.to_thread(request.app.state.task_queue.dead_letters)


@router.post("/dead/{letter_id}/retry", status_code=status.HTTP_202_ACCEPTED,
             responses={404: {"description": "`dead_letter_not_found`"},
                        409: {"description": "`not_retryable`"}})
async def retry(letter_id: str, _: AdminAgent, request: Request) -> dict[str, str]:
    """Queue a dead-lettered task again (its errors map to 404/409 by the workers' tree)."""
    await asyncio.to_thread(request.app.state.task_queue.retry_dead_letter, letter_id)
    return {"status": "queued"}
