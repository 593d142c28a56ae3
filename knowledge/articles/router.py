"""HTTP layer of the knowledge-base editor (every route needs an admin session)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from core.deps import SessionDep, SettingsDep
from knowledge.articles import entities, flows, service, submit
from knowledge.articles.deps import AnswererDep, GraphDep
from knowledge.articles.models import Article
from knowledge.articles.render import render_markdown
from knowledge.articles.schemas import (
    Action,
    ArticleChange,
    ArticleCreate,
    ArticleDetail,
    ArticlePublic,
    ArticlesPublic,
    ArticleSummary,
    ArticleUpdate,
    AskPublic,
    AskRequest,
    AuditPublic,
    AuditsPublic,
    CheckPublic,
    DiffPublic,
    EntityChange,
    EntityLabel,
    EntityPublic,
    EntitySummary,
    EntityUpsert,
    Kind,
    Lang,
    PreviewPublic,
    PreviewRequest,
    RestoreRequest,
    Status,
    TaskStatus,
    VersionPublic,
    VersionRef,
    VersionSummary,
)
from staff.deps import AdminAgent
from workers.deps import TaskQueueDep

router = APIRouter(prefix="/api/v1/kb", tags=["knowledge editor"],
                   responses={401: {"description": "`missing_token`, `invalid_session`"},
                              403: {"description": "`admin_only`"}})
CONFLICTS: dict[int | str, dict[str, Any]] = {409: {"description": "`version_conflict`"}}
ARTICLE: dict[int | str, dict[str, Any]] = {404: {"description": "`article_not_found`"}}
ENTITY: dict[int | str, dict[str, Any]] = {404: {"description": "`entity_not_found`"}}


async def _detail(session: AsyncSession, article: Article) -> ArticleDetail:
    history = await service.versions(session, article_id=article.id)
    return ArticleDetail(**ArticlePublic.model_validate(article).model_dump(),
                         versions=[VersionSummary.model_validate(v) for v in history])


@router.get("/articles", response_model=ArticlesPublic)
async def list_articles(_: AdminAgent, session: SessionDep,
                        q: str | None = Query(default=None, max_length=200),
                        lang: Lang | None = None, kind: Kind | None = None,
                        status: Status | None = None,
                        limit: int = Query(default=50, ge=1, le=200),
                        offset: int = Query(default=0, ge=0)) -> ArticlesPublic:
    """Articles and FAQ entries, newest first; ``q`` matches words in the title or body."""
    rows, total = await service.list_articles(session, query=q, lang=lang, kind=kind,
                                              status=status, limit=limit, offset=offset)
    return ArticlesPublic(items=[ArticleSummary.model_validate(r) for r in rows], total=total,
                          limit=limit, offset=offset)


@router.post("/articles", response_model=ArticleDetail, status_code=status.HTTP_201_CREATED,
             responses={409: {"description": "`article_exists`"}})
async def create_article(body: ArticleCreate, admin: AdminAgent,
                         session: SessionDep) -> ArticleDetail:
    article = await service.create_article(session, data=body, actor_id=admin.id)
    return await _detail(session, article)


@router.get("/articles/{article_id}", response_model=ArticleDetail, responses=ARTICLE)
async def get_article(article_id: str, _: AdminAgent, session: SessionDep) -> ArticleDetail:
    return await _detail(session, await service.get_article(session, article_id=article_id))


@router.put("/articles/{article_id}", response_model=ArticleDetail,
            responses={**ARTICLE, **CONFLICTS})
async def edit_article(article_id: str, body: ArticleUpdate, admin: AdminAgent,
                       session: SessionDep) -> ArticleDetail:
    """Save a new version; refused with 409 `version_conflict` if ``version`` is stale."""
    article, _ = await service.edit_article(
        session, article_id=article_id, version=body.version, title=body.title,
        tags=body.tags, body=body.body, note=body.note, actor_id=admin.id)
    return await _detail(session, article)


@router.get("/articles/{article_id}/versions/{version}", response_model=VersionPublic,
            responses={404: {"description": "`article_not_found`, `version_not_found`"}})
async def get_version(article_id: str, version: int, _: AdminAgent,
                      session: SessionDep) -> VersionPublic:
    return VersionPublic.model_validate(
        await service.get_version(session, article_id=article_id, version=version))


@router.get("/articles/{article_id}/diff", response_model=DiffPublic,
            responses={404: {"description": "`article_not_found`, `version_not_found`"}})
async def diff(article_id: str, _: AdminAgent, session: SessionDep,
               from_version: int = Query(alias="from", ge=1),
               to_version: int = Query(alias="to", ge=1)) -> DiffPublic:
    lines = await service.diff(session, article_id=article_id, from_version=from_version,
                               to_version=to_version)
    return DiffPublic(article_id=article_id, from_version=from_version, to_version=to_version,
                      lines=lines)


@router.post("/articles/{article_id}/restore", response_model=ArticleDetail,
             responses={**ARTICLE, **CONFLICTS})
async def restore(article_id: str, body: RestoreRequest, admin: AdminAgent,
                  session: SessionDep) -> ArticleDetail:
    """Save the content of an old version as a new version."""
    article = await service.restore_version(session, article_id=article_id,
                                            version=body.version,
                                            base_version=body.base_version, actor_id=admin.id)
    return await _detail(session, article)


@router.post("/articles/{article_id}/check", response_model=CheckPublic,
             responses={**ARTICLE, **CONFLICTS})
async def check(article_id: str, body: VersionRef, _: AdminAgent,
                session: SessionDep) -> CheckPublic:
    """What to warn about before publishing ``version`` (the body publish takes): sentences
    addressed to the model, and customers' e-mail addresses, phone numbers, card numbers and
    labelled names. Nothing is refused; the editor asks the author to confirm."""
    article = await service.get_article(session, article_id=article_id)
    service.check_version(article, body.version)
    return CheckPublic(article_id=article.id, version=article.version,
                       findings=service.check_content(title=article.title, body=article.body))


@router.post("/articles/{article_id}/publish", response_model=ArticleChange,
             responses={**ARTICLE, **CONFLICTS, 422: {"description": "`nothing_to_index`"}})
async def publish(article_id: str, body: VersionRef, admin: AdminAgent, session: SessionDep,
                  settings: SettingsDep, queue: TaskQueueDep) -> ArticleChange:
    """Hand the latest version to the indexer (task ``index_document``)."""
    article, task = await flows.publish(session, article_id=article_id, version=body.version,
                                        actor=admin, settings=settings, queue=queue)
    return ArticleChange(article=ArticlePublic.model_validate(article), task=task)


@router.delete("/articles/{article_id}", response_model=ArticleChange,
               responses={**ARTICLE, 409: {"description": "`article_deleted`"}})
async def delete_article(article_id: str, admin: AdminAgent, session: SessionDep,
                         settings: SettingsDep, queue: TaskQueueDep) -> ArticleChange:
    """Take the article out of the index (task ``delete_document``); its history stays."""
    article, task = await flows.delete(session, article_id=article_id, actor=admin,
                                       settings=settings, queue=queue)
    return ArticleChange(article=ArticlePublic.model_validate(article), task=task)


@router.get("/tasks/{task_id}", response_model=TaskStatus,
            responses={404: {"description": "`task_not_found`"}})
async def task_status(task_id: str, _: AdminAgent, queue: TaskQueueDep) -> TaskStatus:
    """Where a publish, delete or entity change handed to the workers stands."""
    return await submit.task_status(queue, task_id=task_id)


@router.post("/preview", response_model=PreviewPublic)
async def preview(body: PreviewRequest, _: AdminAgent) -> PreviewPublic:
    """Markdown as safe HTML: everything escaped, only basic Markdown becomes markup."""
    return PreviewPublic(html=render_markdown(body.body))


@router.get("/audit", response_model=AuditsPublic)
async def audit_log(_: AdminAgent, session: SessionDep,
                    target: str | None = Query(default=None, max_length=200),
                    action: Action | None = None,
                    limit: int = Query(default=50, ge=1, le=200),
                    offset: int = Query(default=0, ge=0)) -> AuditsPublic:
    rows, total = await service.audit_log(session, target=target, action=action,
                                          limit=limit, offset=offset)
    return AuditsPublic(total=total, items=[
        AuditPublic.model_validate({  # the stored action is checked against ``Action`` here
            "id": row.id, "actor_id": row.actor_id, "actor_name": name, "action": row.action,
            "target": row.target, "detail": row.detail, "created_at": row.created_at})
        for row, name in rows])


@router.post("/ask", response_model=AskPublic)
async def ask(body: AskRequest, _: AdminAgent, answerer: AnswererDep) -> AskPublic:
    """What the bot answers from the published knowledge, with its citations."""
    return await flows.ask(answerer, question=body.question.strip(), lang=body.lang)


@router.get("/entities/{label}", response_model=list[EntitySummary])
async def list_entities(label: EntityLabel, _: AdminAgent, graph: GraphDep,
                        q: str | None = Query(default=None, max_length=200)
                        ) -> list[EntitySummary]:
    return await entities.list_entities(graph, label=label, query=q)


@router.get("/entities/{label}/{key}", response_model=EntityPublic, responses=ENTITY)
async def get_entity(label: EntityLabel, key: str, _: AdminAgent,
                     graph: GraphDep) -> EntityPublic:
    return await entities.get_entity(graph, label=label, key=key)


@router.put("/entities/{label}/{key}", response_model=EntityChange,
            responses={409: {"description": "`missing_endpoint`, `self_relation`"},
                       422: {"description": "`invalid_graph_name`, `invalid_graph_value`"}})
async def upsert_entity(label: EntityLabel, key: str, body: EntityUpsert, admin: AdminAgent,
                        session: SessionDep, graph: GraphDep, settings: SettingsDep,
                        queue: TaskQueueDep) -> EntityChange:
    """Create or replace a product or policy (task ``upsert_entity``)."""
    task = await flows.upsert_entity(session, label=label, key=key, data=body, actor=admin,
                                     graph=graph, settings=settings, queue=queue)
    return EntityChange(label=label, key=key, task=task)


@router.delete("/entities/{label}/{key}", response_model=EntityChange,
               responses=ENTITY)
async def delete_entity(label: EntityLabel, key: str, admin: AdminAgent, session: SessionDep,
                        graph: GraphDep, settings: SettingsDep,
                        queue: TaskQueueDep) -> EntityChange:
    """Delete a product or policy and its relations (task ``delete_entity``)."""
    task = await flows.delete_entity(session, label=label, key=key, actor=admin, graph=graph,
                                     settings=settings, queue=queue)
    return EntityChange(label=label, key=key, task=task)
