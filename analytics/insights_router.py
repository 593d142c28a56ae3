"""HTTP layer of the knowledge insights: gaps, drafts, the answer audit, article stats and the
gate's calibration (admin or analyst: ``analytics.deps.AnalyticsReader``).

Periods are read as the dashboard's are (``analytics.router.period``): ``from`` and ``to``
are ISO dates or date-times (``to`` excluded), in ``tz``; by default the last seven days, and
for a draft the last ``DRAFT_DAYS`` (the editor's link names no period). Bad input answers 422
with the same codes.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import HTTPConnection

from analytics import audit, gaps
from analytics.audit import Window
from analytics.deps import AnalyticsReader
from analytics.router import ERRORS, FromQuery, ToQuery, period
from core.db import utcnow
from core.deps import MakerDep, SessionDep
from knowledge.embeddings import Embedder

DRAFT_DAYS = 90
LANG = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})?$"
CLUSTER_ID = r"^[A-Za-z0-9]{1,8}-[0-9a-f]{12}$"

router = APIRouter(prefix="/api/v1/admin/analytics", tags=["analytics"], responses=ERRORS)


def get_embedder(request: HTTPConnection) -> Embedder:
    embedder: Embedder = request.app.state.embedder
    return embedder


EmbedderDep = Annotated[Embedder, Depends(get_embedder)]


def report_window(start: str | None = FromQuery, end: str | None = ToQuery,
                  tz: Annotated[str, Query(max_length=64)] = "UTC") -> Window:
    since, until, _ = period(start, end, tz)
    return Window(since.astimezone(UTC), until.astimezone(UTC))


def draft_window(start: str | None = FromQuery, end: str | None = ToQuery,
                 tz: Annotated[str, Query(max_length=64)] = "UTC") -> Window:
    if start is None and end is None:
        now = utcnow()
        return Window(now - timedelta(days=DRAFT_DAYS), now + timedelta(seconds=1))
    return report_window(start, end, tz)


PeriodDep = Annotated[Window, Depends(report_window)]
LangQuery = Annotated[str | None, Query(pattern=LANG)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "`gap_not_found`"}}


@router.get("/knowledge-gaps", response_model=gaps.GapReport)
async def knowledge_gaps(_: AnalyticsReader, maker: MakerDep, embedder: EmbedderDep,
                         window: PeriodDep, lang: LangQuery = None,
                         limit: Annotated[int, Query(ge=1, le=200)] = 50) -> gaps.GapReport:
    """Questions the bot abstained on or handed off after, clustered by meaning per language,
    most frequent first; each with a draft link and, once an article covers it, the
    abstention rate before and after its publication."""
    # The maker, not a request session: no transaction is held while questions are embedded.
    return await gaps.knowledge_gaps(maker, embedder, window=window, lang=lang, limit=limit)


@router.get("/knowledge-gaps/{cluster_id}/draft", response_model=gaps.GapDraft,
            responses=NOT_FOUND)
async def gap_draft(_: AnalyticsReader, maker: MakerDep, embedder: EmbedderDep,
                    window: Annotated[Window, Depends(draft_window)],
                    cluster_id: Annotated[str, Path(pattern=CLUSTER_ID)]) -> gaps.GapDraft:
    """The editor's pre-fill for a new article closing this gap (title, body, language)."""
    return await gaps.draft(maker, embedder, cluster_id=cluster_id, window=window)


@router.get("/answers", response_model=audit.AuditedAnswers)
async def answers(_: AnalyticsReader, session: SessionDep, window: PeriodDep,
                  lang: LangQuery = None, abstained: bool | None = None,
                  page: Annotated[int, Query(ge=1, le=10_000)] = 1,
                  per_page: Annotated[int, Query(ge=1, le=100)] = 25) -> audit.AuditedAnswers:
    """Knowledge answers, newest first, with sources, the gate's kept and dropped sentences,
    the generator, latency and how the conversation ended."""
    return await audit.answers_page(session, window=window, lang=lang, abstained=abstained,
                                    page=page, per_page=per_page)


@router.get("/articles", response_model=audit.ArticlesStats)
async def articles(_: AnalyticsReader, session: SessionDep, window: PeriodDep,
                   lang: LangQuery = None) -> audit.ArticlesStats:
    """Per cited source: citations, and the hand-off rate and CSAT of those conversations."""
    return await audit.article_stats(session, window=window, lang=lang)


@router.get("/gate-calibration", response_model=audit.GateCalibration)
async def gate_calibration(_: AnalyticsReader, session: SessionDep, window: PeriodDep,
                           lang: LangQuery = None) -> audit.GateCalibration:
    """Abstentions a person then answered against answers after which the customer asked for
    a person: counts and examples."""
    return await audit.gate_calibration(session, window=window, lang=lang)
