"""Admin API for NLU model versions: list with metrics, activate (hot swap), roll back, and run
a canary beside the active version."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from core.deps import SettingsDep
from nlu import admin
from staff.deps import AdminAgent

router = APIRouter(prefix="/api/v1/admin/nlu", tags=["admin"])


class ActivateRequest(BaseModel):
    version: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")
    force: bool = False  # allow a version below the evaluation floor


class CanaryRequest(BaseModel):
    version: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")
    share: float = Field(gt=0.0, lt=1.0)


@router.get("")
async def overview(_: AdminAgent, settings: SettingsDep) -> dict[str, Any]:
    """Versions with metadata and evaluation metrics; the active version, the canary and the
    live figures of both."""
    return await asyncio.to_thread(admin.overview, settings)


@router.post("/activate", responses={404: {"description": "`nlu_model_not_found`"},
                                     409: {"description": "`nlu_below_floor`"},
                                     422: {"description": "`nlu_version_broken`"}})
async def activate(body: ActivateRequest, _: AdminAgent, settings: SettingsDep) -> dict:
    serving = await asyncio.to_thread(admin.activate, settings, body.version, force=body.force)
    return {"active": body.version, "serving": serving}


@router.post("/rollback", responses={409: {"description": "`nlu_conflict`"}})
async def rollback(_: AdminAgent, settings: SettingsDep) -> dict:
    version = await asyncio.to_thread(admin.rollback, settings)
    return {"active": version}


@router.put("/canary", responses={404: {"description": "`nlu_model_not_found`"},
                                  409: {"description": "`nlu_below_floor` or `nlu_conflict`"}})
async def set_canary(body: CanaryRequest, _: AdminAgent, settings: SettingsDep) -> dict:
    serving = await asyncio.to_thread(admin.set_canary, settings, body.version, body.share)
    return {"canary": {"version": body.version, "share": body.share}, "serving": serving}


@router.delete("/canary")
async def clear_canary(_: AdminAgent, settings: SettingsDep) -> dict:
    await asyncio.to_thread(admin.clear_canary, settings)
    return {"canary": None}
