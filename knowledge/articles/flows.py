"""Editor operations that span the database, the task queue and the knowledge stores.

Publishing hands the article to the workers (task ``index_document``); deleting hands over
``delete_document``; saving a graph entity ``upsert_entity`` / ``delete_entity``. The
database row, the audit entry and the hand-over are one step: if the queue refuses the task,
nothing is committed.

With no queue (``queue=None``: :func:`task_queue` gives that while the ``workers.queue``
package is missing; the unit tests and ``parley kb import`` ask for it) each flow does the
work itself, here and now, as the worker would (the ``queue is None`` branches).
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.errors import Conflict, NotFound, Unprocessable
from knowledge import factory
from knowledge.articles import entities, service
from knowledge.articles.models import Article
from knowledge.articles.schemas import (
    ArticleCreate,
    AskPublic,
    EntityUpsert,
    TaskPublic,
    TaskStatus,
)
from knowledge.documents.protocol import DocumentIndex
from knowledge.embeddings import E5Embedder, Embedder
from knowledge.graph.protocol import GraphStore
from knowledge.ingest import (
    Document,
    ImportReport,
    ParseError,
    collect_files,
    import_documents,
    parse_faq_csv,
    parse_markdown,
)
from knowledge.schemas import Citation
from staff.models import Agent

logger = logging.getLogger(__name__)
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


class TaskQueue(Protocol):
    """What the editor asks of ``workers.queue``."""

    def enqueue(self, task: str, payload: dict[str, Any], *, key: str | None = None) -> str: ...

    def status(self, task_id: str) -> dict[str, Any] | None: ...


def task_queue(settings: Settings) -> TaskQueue | None:
    """The workers' queue, or ``None`` while the ``workers.queue`` package does not exist."""
    try:
        from workers.queue import get_queue
    except ModuleNotFoundError as exc:
        if exc.name not in ("workers", "workers.queue"):
            raise  # the package exists but is broken: say so, do not hide it
        return None
    return get_queue(settings)


EVENT_FOR_TASK = {"index_document": ("upsert", "article"), "delete_document": ("delete", "article"),
                  "upsert_entity": ("upsert", "entity"), "delete_entity": ("delete", "entity")}


async def _enqueue(queue: TaskQueue, task: str, payload: dict[str, Any],
                   settings: Settings | None = None) -> TaskPublic:
    """Hand the change to the workers: through Kafka's ``knowledge.changes`` when Kafka is
    configured (every consumer sees it; the consumer enqueues the task), else straight to the
    queue. The returned id is what :func:`task_status` follows."""
    payload = json.loads(json.dumps(payload))
    if settings is not None and settings.kafka_bootstrap:
        from workers.kafka import publish_change

        op, kind = EVENT_FOR_TASK[task]
        event_id = await publish_change(settings, {"op": op, "kind": kind, "data": payload})
        logger.info("published %s to Kafka as event %s", task, event_id)
        return TaskPublic(task_id=f"event:{event_id}", state="queued")
    # No idempotency key: publishing the same version again after a delete must index again.
    task_id = await asyncio.to_thread(queue.enqueue, task, payload, key=None)
    logger.info("enqueued %s as %s", task, task_id)
    return TaskPublic(task_id=str(task_id), state="queued")


async def task_status(queue: TaskQueue | None, *, task_id: str) -> TaskStatus:
    if queue is not None and task_id.startswith("event:"):  # published to Kafka: its task,
        key = await asyncio.to_thread(queue.task_for_key, task_id)  # once the consumer ran
        if key is None:
            return TaskStatus(task_id=task_id, task="kafka event", state="queued", attempts=0,
                              error="")
        task_id = key
    status = await asyncio.to_thread(queue.status, task_id) if queue is not None else None
    if status is None:
        raise NotFound(f"No task {task_id!r}.", code="task_not_found")
    return TaskStatus(task_id=task_id, task=str(status.get("task", "")),
                      state=str(status["state"]), attempts=int(status.get("attempts") or 0),
                      error=str(status.get("error") or ""))


def _audited(task: TaskPublic) -> dict[str, Any]:
    """The task as the audit log keeps it: its id and state, and what it did if known."""
    return {name: value for name, value in task.model_dump().items() if value not in (None, {})}


def _actor_id(actor: Agent | None) -> int | None:
    return actor.id if actor is not None else None


# ------------------------------------------------------------------ articles → documents

def index_payload(article: Article) -> dict[str, Any]:
    """The ``index_document`` task payload for the article's latest version."""
    tags = list(article.tags)
    if article.kind == "faq" and "faq" not in tags:
        tags.append("faq")
    return {"doc_id": article.id, "title": article.title, "lang": article.lang, "tags": tags,
            "text": article.body, "source": "editor", "version": article.version}


def document_from_payload(payload: dict[str, Any]) -> Document:
    """An ``index_document`` payload parsed exactly as the worker will parse it."""
    from workers.errors import InvalidPayload
    from workers.tasks import document_from_payload as parse

    try:
        return parse(payload)
    except InvalidPayload as exc:
        raise Unprocessable(f"Nothing to publish: {exc}.", code="nothing_to_index") from exc


async def publish(session: AsyncSession, *, article_id: str, version: int,
                  actor: Agent | None, settings: Settings, queue: TaskQueue | None,
                  index: DocumentIndex | None = None,
                  embedder: Embedder | None = None) -> tuple[Article, TaskPublic]:
    """Publish the latest version (``version`` must be it): index it, mark it published."""
    article = await service.get_article(session, article_id=article_id)
    service.check_version(article, version)
    payload = index_payload(article)
    document = document_from_payload(payload)  # refuses an article with no text now
    if queue is not None:
        task = await _enqueue(queue, "index_document", payload, settings)
    else:
        # Fallback while workers.queue does not exist: index here, as the worker will.
        report = ImportReport()
        own_index = index is None
        index = index or factory.document_index(settings)
        try:
            await import_documents([document], index=index, embedder=embedder or E5Embedder(),
                                   report=report)
        finally:
            if own_index:
                await index.close()
        task = TaskPublic(task_id=None, state="done", detail={
            "added": report.added, "removed": report.removed, "unchanged": report.unchanged})
    service.mark_published(session, article=article, actor_id=_actor_id(actor),
                           task=_audited(task))
    await session.commit()
    return article, task


async def delete(session: AsyncSession, *, article_id: str, actor: Agent | None,
                 settings: Settings, queue: TaskQueue | None,
                 index: DocumentIndex | None = None) -> tuple[Article, TaskPublic]:
    """Take the article out of the index and mark it deleted (its history stays)."""
    article = await service.get_article(session, article_id=article_id)
    if article.status == "deleted":
        raise Conflict("This article is already deleted.", code="article_deleted")
    if queue is not None:
        task = await _enqueue(queue, "delete_document", {"doc_id": article.id}, settings)
    else:
        own_index = index is None
        index = index or factory.document_index(settings)
        try:
            removed = await index.delete_document(article.id)
        finally:
            if own_index:
                await index.close()
        task = TaskPublic(task_id=None, state="done", detail={"removed": removed})
    service.mark_deleted(session, article=article, actor_id=_actor_id(actor),
                         task=_audited(task))
    await session.commit()
    return article, task


# ------------------------------------------------------------------ graph entities

async def upsert_entity(session: AsyncSession, *, label: str, key: str, data: EntityUpsert,
                        actor: Agent | None, graph: GraphStore, queue: TaskQueue | None,
                        settings: Settings | None = None) -> TaskPublic:
    payload = await entities.upsert_payload(graph, label=label, key=key, data=data)
    if queue is not None:
        task = await _enqueue(queue, "upsert_entity", payload, settings)
    else:
        await entities.apply_upsert(graph, payload)
        task = TaskPublic(task_id=None, state="done")
    service.audit(session, actor_id=_actor_id(actor), action="entity_upsert",
                  target=f"{label}:{key}",
                  detail={"props": sorted(payload["props"]),
                          "relations": [f"{e['rel']} {e['dst_label']}:{e['dst_key']}"
                                        for e in payload["edges"]], **_audited(task)})
    await session.commit()
    return task


async def delete_entity(session: AsyncSession, *, label: str, key: str, actor: Agent | None,
                        graph: GraphStore, queue: TaskQueue | None,
                        settings: Settings | None = None) -> TaskPublic:
    await entities.check_exists(graph, label=label, key=key)
    if queue is not None:
        task = await _enqueue(queue, "delete_entity", {"label": label, "key": key}, settings)
    else:
        await graph.delete_node(label, key)
        task = TaskPublic(task_id=None, state="done")
    service.audit(session, actor_id=_actor_id(actor), action="entity_delete",
                  target=f"{label}:{key}", detail=_audited(task))
    await session.commit()
    return task


# ------------------------------------------------------------------ ask the bot

async def ask(answerer: Any, *, question: str, lang: str) -> AskPublic:
    """The answer a customer would get from the published knowledge (no conversation)."""
    answer = await answerer.answer(question, lang=lang)
    return AskPublic(text=answer.text, citations=[Citation(**c) for c in answer.citations],
                     abstained=answer.abstained, reason=answer.reason,
                     generator=answer.generator)


# ------------------------------------------------------------------ import from files

@dataclass
class FilesImported:
    files: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not Markdown or a FAQ CSV
    failed: list[tuple[str, str]] = field(default_factory=list)


def read_markdown(path: Path) -> ArticleCreate:
    raw = path.read_text(encoding="utf-8")
    match = _FRONT_MATTER.match(raw)
    (document,) = parse_markdown(path)  # ParseError for bad front matter or no text
    meta = (yaml.safe_load(match.group(1)) or {}) if match else {}
    kind = str(meta.get("kind") or "article")
    return ArticleCreate(id=document.id, kind=kind, lang=document.lang,  # type: ignore[arg-type]
                         title=document.title, tags=list(document.tags),
                         body=raw[match.end():] if match else raw,
                         note=f"Imported from {path.name}")


def read_faq_csv(path: Path) -> list[ArticleCreate]:
    return [ArticleCreate(id=d.id, kind="faq", lang=d.lang, title=d.title,  # type: ignore[arg-type]
                          tags=list(d.tags), body="\n\n".join(t for _, t in d.sections),
                          note=f"Imported from {path.name}")
            for d in parse_faq_csv(path)]


async def import_files(session: AsyncSession, path: Path, actor: Agent | None = None, *,
                       settings: Settings,
                       queue: TaskQueue | Literal["auto"] | None = "auto",
                       embedder: Embedder | None = None,
                       progress: Callable[[Path], None] = lambda _: None) -> FilesImported:
    """Create or update articles from Markdown files (front matter: id, title, tags, lang,
    optionally ``kind: faq``) and FAQ CSVs (``question,answer``; ids ``faq:<row>`` as the
    plain import gives them), then publish the ones that are new or changed.

    A file that cannot be read is reported in ``failed`` and the rest are imported.
    """
    result = FilesImported()
    queue = task_queue(settings) if queue == "auto" else queue
    index = factory.document_index(settings) if queue is None else None
    embedder = embedder or (E5Embedder() if queue is None else None)
    try:
        for file in collect_files(Path(path)):
            progress(file)
            result.files += 1
            suffix = file.suffix.lower()
            try:
                if suffix in (".md", ".markdown"):
                    items = [read_markdown(file)]
                elif suffix == ".csv":
                    items = read_faq_csv(file)
                else:
                    result.skipped.append(str(file))
                    continue
            except (ParseError, ValidationError, UnicodeDecodeError, OSError, csv.Error,
                    yaml.YAMLError) as exc:
                result.failed.append((str(file), _why(exc)))
                continue
            for data in items:
                try:
                    await _import_one(session, data, actor, result, settings=settings,
                                      queue=queue, index=index, embedder=embedder)
                except (Conflict, Unprocessable) as exc:
                    await session.rollback()
                    result.failed.append((f"{file}#{data.id}", exc.message))
    finally:
        if index is not None:
            await index.close()
    return result


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return str(exc) or type(exc).__name__


async def _import_one(session: AsyncSession, data: ArticleCreate, actor: Agent | None,
                      result: FilesImported, *, settings: Settings, queue: TaskQueue | None,
                      index: DocumentIndex | None, embedder: Embedder | None) -> None:
    actor_id = _actor_id(actor)
    article = await session.get(Article, data.id)
    if article is None:
        article = await service.create_article(session, data=data, actor_id=actor_id)
        result.created.append(article.id)
    elif (service.same_content(article, title=data.title, tags=data.tags, body=data.body)
          and (article.lang, article.kind) == (data.lang, data.kind)
          and article.status != "deleted"):
        if article.published_version == article.version:
            result.unchanged.append(article.id)
            return
    else:
        article.lang, article.kind = data.lang, data.kind
        await service.edit_article(session, article_id=article.id, version=article.version,
                                   title=data.title, tags=data.tags, body=data.body,
                                   note=data.note, actor_id=actor_id)
        result.updated.append(article.id)
    _, task = await publish(session, article_id=article.id, version=article.version,
                            actor=actor, settings=settings, queue=queue, index=index,
                            embedder=embedder)
    result.published.append(article.id)
    if task.task_id:
        result.tasks.append(task.task_id)
