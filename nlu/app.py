"""The NLU service: a small FastAPI app serving the active model version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from nlu.router import router
from nlu.service import NLUService
from web.core.config import Settings, get_settings
from web.core.errors import ParleyError
from web.core.handlers import install_error_handlers


def create_nlu_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    service = NLUService(settings.nlu_model_dir,
                         fallback_threshold=settings.nlu_fallback_threshold)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.warm_up()
        yield

    app = FastAPI(title="Parley NLU", lifespan=lifespan)
    app.state.nlu = service
    app.include_router(router)
    install_error_handlers(app)
    return app


__all__ = ["ParleyError", "create_nlu_app"]
