"""HTTP layer of the NLU service: the parse endpoint Rasa's ParleyNLU component calls."""

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
    return await asyncio.to_thread(_service(request).parse, body.text)


@router.get("/healthz")
async def healthz(request: Request) -> dict:
    service = _service(request)
    return {"status": "ok", "model_version": service.version}
