"""Liveness, readiness (each dependency reported) and Prometheus metrics."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from core.errors import Forbidden, Unauthorized
from core.security import bearer, same

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


@router.get("/readyz", responses={503: {"description": "A dependency is down: `status` is "
                                                      "`not_ready`, `checks` says which"}})
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


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@router.get("/metrics", responses={401: {"description": "Not the metrics token (`invalid_token`)"},
                                   403: {"description": "Not from this machine, and no metrics "
                                                        "token is set (`metrics_forbidden`)"}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics: with ``PARLEY_METRICS_TOKEN`` set, for ``Authorization: Bearer
    <token>`` only; without it, for clients on this machine only (never the public)."""
    token = request.app.state.settings.metrics_token.get_secret_value()
    if token:
        if not same(bearer(request.headers.get("authorization")) or "", token):
            raise Unauthorized("Metrics need the metrics token.", code="invalid_token")
    elif (request.client.host if request.client else "") not in LOOPBACK:
        raise Forbidden("Metrics are served to this machine only (or set PARLEY_METRICS_TOKEN).",
                        code="metrics_forbidden")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
