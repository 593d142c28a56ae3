"""Build the public FastAPI app: mount routers, wire dependencies, recover pending turns."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from analytics import fold as analytics_fold
from analytics.insights_router import router as insights_router
from analytics.router import router as analytics_router
from conversations import flows, internal, locks, widget
from conversations.dialogue import DialogueEngine, RasaDialogue
from conversations.privacy_router import router as customer_data_router
from conversations.router import router as conversations_router
from conversations.stream import create_hub
from core import db, tracing
from core.config import Settings, get_settings
from core.errors import API_ERRORS, STAFF_ERRORS, NotFound
from core.handlers import BodySizeLimit, CountRequests, install_error_handlers
from core.project import Project, project_of
from handoff.public_router import router as handoff_public_router
from handoff.router import router as agent_router
from handoff.triggers import Triggers
from knowledge import factory as knowledge_factory
from knowledge.articles.router import router as kb_router
from knowledge.embedded import SQLiteCompanyStore
from knowledge.tasks import EMBEDDER
from nlu.admin_router import router as nlu_admin_router
from staff.router import router as auth_router
from web import health
from workers.context import Resources
from workers.embedded import EmbeddedQueue
from workers.errors import WorkerAlreadyRunning
from workers.queue import get_queue
from workers.router import router as tasks_router

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"
# The logo may be an SVG: opened on its own, it must not run scripts on this origin.
LOGO_HEADERS = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox"}


async def _recover_pending(app: FastAPI, *, interval_s: float = 10.0) -> None:
    """Finish turns left pending by a crash or an outage: at start-up as soon as Rasa answers,
    then every ``interval_s`` (a customer who closed the tab still gets the answer)."""
    while True:
        if await app.state.dialogue.ready():
            try:
                finished = await flows.recover_pending(maker=app.state.maker,
                                                       dialogue=app.state.dialogue,
                                                       hub=app.state.hub,
                                                       escalation=app.state.escalation)
            except Exception:
                logger.exception("recovery pass failed")
            else:
                if finished:
                    logger.info("recovered %d pending turn(s)", finished)
        await asyncio.sleep(interval_s)


def _generic_page(template: str, project: Project) -> str:
    """web/templates/index.html for a project without a site of its own."""
    config = widget.widget_config(project)
    logo = f'<img src="{html.escape(config.logo)}" alt="">' if config.logo else ""
    values = {"company": html.escape(config.company), "color": config.color, "logo": logo,
              "lang": "zh-CN" if config.default_language == "zh" else "en",
              "languages": json.dumps(config.languages)}
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values.get(m[1], m[0]), template)


def create_app(settings: Settings | None = None, *,
               dialogue: DialogueEngine | None = None) -> FastAPI:
    settings = settings or get_settings()
    tracing.configure(settings, service="parley-api")  # off unless an OTLP endpoint is set

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(db.upgrade_database, settings.database_url)
        engine = db.create_engine(settings.database_url)
        app.state.maker = db.sessionmaker(engine)
        await app.state.hub.start()
        turn_locks = locks.create_locks(settings)  # before anything runs a turn
        previous_locks = locks.use(turn_locks)
        app.state.company_store = SQLiteCompanyStore(settings.company_data_dir,
                                                     settings.var_dir / "knowledge.db")
        app.state.document_index = knowledge_factory.document_index(settings)
        app.state.embedder = embedder = knowledge_factory.embedder(settings)
        shared = Resources()
        shared.provide(EMBEDDER, embedder)  # the embedded worker's tasks use the same model
        app.state.task_queue = queue = get_queue(settings, resources=shared)
        if isinstance(queue, EmbeddedQueue):
            try:
                queue.start()  # the embedded default works its queue in the API process
            except WorkerAlreadyRunning:
                pass  # `parley worker` or another API process works it
        app.state.dialogue = dialogue or RasaDialogue(
            settings.rasa_url, token=settings.rasa_token.get_secret_value(),
            timeout_s=settings.rasa_timeout_s, nlu_url=settings.nlu_url)
        recovery = asyncio.create_task(_recover_pending(app))
        folder = asyncio.create_task(analytics_fold.run_forever(  # outbox → analytics facts
            app.state.maker, reopen_days=settings.analytics_reopen_days))
        try:
            yield
        finally:
            for background in (recovery, folder):
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            await app.state.dialogue.aclose()
            await app.state.hub.aclose()
            locks.use(previous_locks)
            await turn_locks.aclose()
            await app.state.document_index.close()
            await asyncio.to_thread(queue.close)
            await engine.dispose()

    app = FastAPI(title="Parley", version="0.1.0", lifespan=lifespan,
                  description="Public API of Parley, the self-hosted AI customer-service platform.")
    app.state.settings = settings
    app.state.hub = create_hub(settings.stream_url, prefix=settings.redis_prefix)
    app.state.escalation = Triggers(settings.project)
    install_error_handlers(app)
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                       allow_methods=["GET", "POST", "PUT", "DELETE"],
                       allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    app.add_middleware(CountRequests)
    app.add_middleware(tracing.TracingMiddleware)  # outermost: spans cover every layer

    # The errors every route of a router can answer are declared here, once; a route declares
    # its own (404, 409, 429 ...) in its decorator, and those win over these.
    app.include_router(conversations_router, responses=API_ERRORS)
    app.include_router(analytics_router, responses=STAFF_ERRORS)
    app.include_router(insights_router, responses=STAFF_ERRORS)
    app.include_router(widget.router)
    app.include_router(handoff_public_router, responses=API_ERRORS)
    app.include_router(auth_router, responses=STAFF_ERRORS)
    app.include_router(agent_router, responses=STAFF_ERRORS)
    app.include_router(kb_router, responses=STAFF_ERRORS)
    app.include_router(tasks_router, responses=STAFF_ERRORS)
    app.include_router(nlu_admin_router, responses=STAFF_ERRORS)
    app.include_router(customer_data_router, responses=STAFF_ERRORS)
    app.include_router(internal.router)
    app.include_router(health.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    pages = {name: (TEMPLATES / f"{name}.html").read_text(encoding="utf-8")
             for name in ("index", "console", "editor", "analytics")
             if (TEMPLATES / f"{name}.html").exists()}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> Response:
        """The project's own site/index.html, else a generic page; both embed the widget."""
        project = project_of(settings.project)
        site = widget.site_page(project)
        if site is not None:
            return FileResponse(site, media_type="text/html")
        return HTMLResponse(_generic_page(pages["index"], project))

    @app.get(widget.LOGO_PATH, include_in_schema=False)
    async def project_logo() -> FileResponse:
        """The one file ``widget.logo`` names in the project folder; nothing else is served."""
        logo = widget.logo_file(project_of(settings.project))
        if logo is None:
            raise NotFound("This project has no logo file.", code="logo_not_found")
        path, media_type = logo
        return FileResponse(path, media_type=media_type, headers=LOGO_HEADERS)

    @app.get("/console", response_class=HTMLResponse, include_in_schema=False)
    async def console() -> str:
        return pages.get("console", "")

    @app.get("/editor", response_class=HTMLResponse, include_in_schema=False)
    async def editor() -> str:
        return pages.get("editor", "")

    @app.get("/analytics", response_class=HTMLResponse, include_in_schema=False)
    async def analytics() -> str:
        return pages.get("analytics", "")

    return app
