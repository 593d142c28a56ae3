"""HTTP layer of the NLU service: the parse endpoint Rasa's ParleyNLU component calls, and the
registry reload and live figures the admin API uses."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from nlu.schemas import ParsePublic, ParseRequest
from nlu.service import NLUService

router = APIRouter()


def _service(request: Request) -> NLUService:
    return request.app.state.nlu


@router.post("/model/parse", response_model=ParsePublic)
async def parse(body: ParseRequest, request: Request) -> dict:
    future = _service(request).parse_future(body.text, body.conversation_id)
    return await asyncio.wrap_future(future)


@router.post("/admin/reload")
async def reload(request: Request) -> dict:
    """Serve what the registry says now (read-only for callers: it changes nothing itself)."""
    service = _service(request)
    changed = await asyncio.to_thread(service.refresh)
    return {"changed": changed, **service.report()}


@router.get("/admin/stats")
async def stats(request: Request) -> dict:
    return _service(request).report()


@router.get("/healthz")
async def healthz(request: Request) -> dict:
    service = _service(request)
    return {"status": "ok", "model_version": service.version}
