"""Editor operations that span the database and the workers.

Publishing hands the article to the workers (task ``index_document``); deleting hands over
``delete_document``; saving a graph entity ``upsert_entity`` / ``delete_entity``. The
workers are the only path to the document index and the graph: these flows write neither.
The database row, the audit entry and the hand-over are one step, committed here: if the
hand-over is refused, nothing is committed; the audit entry names the task.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.errors import Conflict
from knowledge.answer import Answerer
from knowledge.articles import entities, service
from knowledge.articles.models import Article
from knowledge.articles.schemas import AskPublic, EntityUpsert, TaskPublic
from knowledge.articles.submit import check_indexable, index_payload, submit
from knowledge.graph.protocol import GraphStore
from knowledge.schemas import Citation
from staff.models import Agent
from workers.queue import TaskQueue


def _actor_id(actor: Agent | None) -> int | None:
    return actor.id if actor is not None else None


# ------------------------------------------------------------------ articles → documents

async def publish(session: AsyncSession, *, article_id: str, version: int,
                  actor: Agent | None, settings: Settings,
                  queue: TaskQueue) -> tuple[Article, TaskPublic]:
    """Publish the latest version (``version`` must be it): hand it to the indexer, mark it
    published."""
    article = await service.get_article(session, article_id=article_id)
    service.check_version(article, version)
    payload = index_payload(article)
    check_indexable(payload)  # refuses an article with no text now, not in the worker
    task = await submit(queue, "index_document", payload, settings=settings)
    service.mark_published(session, article=article, actor_id=_actor_id(actor),
                           task=task.model_dump())
    await session.commit()
    return article, task


async def delete(session: AsyncSession, *, article_id: str, actor: Agent | None,
                 settings: Settings, queue: TaskQueue) -> tuple[Article, TaskPublic]:
    """Take the article out of the index and mark it deleted (its history stays)."""
    article = await service.get_article(session, article_id=article_id)
    if article.status == "deleted":
        raise Conflict("This article is already deleted.", code="article_deleted")
    task = await submit(queue, "delete_document", {"doc_id": article.id}, settings=settings)
    service.mark_deleted(session, article=article, actor_id=_actor_id(actor),
                         task=task.model_dump())
    await session.commit()
    return article, task


# ------------------------------------------------------------------ graph entities

async def upsert_entity(session: AsyncSession, *, label: str, key: str, data: EntityUpsert,
                        actor: Agent | None, graph: GraphStore, settings: Settings,
                        queue: TaskQueue) -> TaskPublic:
    """Check the entity against the graph, then hand the write to the workers."""
    payload = await entities.upsert_payload(graph, label=label, key=key, data=data)
    task = await submit(queue, "upsert_entity", payload, settings=settings)
    service.audit(session, actor_id=_actor_id(actor), action="entity_upsert",
                  target=f"{label}:{key}",
                  detail={"props": sorted(payload["props"]),
                          "relations": [f"{e['rel']} {e['dst_label']}:{e['dst_key']}"
                                        for e in payload["edges"]], **task.model_dump()})
    await session.commit()
    return task


async def delete_entity(session: AsyncSession, *, label: str, key: str, actor: Agent | None,
                        graph: GraphStore, settings: Settings, queue: TaskQueue) -> TaskPublic:
    await entities.check_exists(graph, label=label, key=key)
    task = await submit(queue, "delete_entity", {"label": label, "key": key},
                        settings=settings)
    service.audit(session, actor_id=_actor_id(actor), action="entity_delete",
                  target=f"{label}:{key}", detail=task.model_dump())
    await session.commit()
    return task


# ------------------------------------------------------------------ ask the bot

async def ask(answerer: Answerer, *, question: str, lang: str) -> AskPublic:
    """The answer a customer would get from the published knowledge (no conversation)."""
    answer = await answerer.answer(question, lang=lang)
    return AskPublic(text=answer.text, citations=[Citation(**c) for c in answer.citations],
                     abstained=answer.abstained, reason=answer.reason,
                     generator=answer.generator)
