"""The NLU service: a small FastAPI app serving the registry's active version (and canary)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core import tracing
from core.config import Settings, get_settings
from core.errors import ParleyError
from core.handlers import install_error_handlers
from nlu.router import router
from nlu.service import NLUService, project_options

logger = logging.getLogger(__name__)


def create_nlu_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    tracing.configure(settings, service="parley-nlu")  # off unless an OTLP endpoint is set
    service = NLUService(settings.nlu_model_dir,
                         fallback_threshold=settings.nlu_fallback_threshold,
                         threads=settings.nlu_threads, batching=True,
                         **project_options(settings.project))

    async def watch_registry() -> None:
        # An activation made elsewhere (the CLI, another process) is picked up within a
        # second or two; the admin API also asks for an immediate reload.
        while True:
            await asyncio.sleep(settings.nlu_registry_poll_s)
            try:
                await asyncio.to_thread(service.refresh)
            except Exception:
                logger.exception("NLU registry refresh failed; still serving %s",
                                 service.version)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(service.warm_up)
        watcher = asyncio.create_task(watch_registry())
        yield
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        service.close()

    app = FastAPI(title="Parley NLU", lifespan=lifespan)
    app.state.nlu = service
    app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(tracing.TracingMiddleware)  # continues the caller's traceparent
    return app


__all__ = ["ParleyError", "create_nlu_app"]
