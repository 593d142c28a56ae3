"""Liveness, readiness (each dependency reported) and Prometheus metrics."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _http_ok(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def _database_ok(request: Request) -> bool:
    try:
        async with request.app.state.maker() as session:
            await session.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    database, rasa, nlu, actions = await asyncio.gather(
        _database_ok(request),
        request.app.state.dialogue.ready(),
        _http_ok(f"{settings.nlu_url}/healthz"),
        _http_ok(f"http://{settings.action_host}:{settings.action_port}/health"),
    )
    checks = {"database": database, "rasa": rasa, "nlu": nlu, "action_server": actions}
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready",
         "checks": {k: "ok" if v else "unavailable" for k, v in checks.items()}},
        status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
