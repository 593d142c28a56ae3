"""Articles from files: Markdown and FAQ CSVs through the editor (``parley kb import``).

Each file becomes articles the way the editor makes them: a new version when the content
changed, then published through the workers like any publish (``flows.publish``). A file
that cannot be read is reported in ``failed`` and the rest are imported; with ``wait``, so is
an article whose indexing task ends dead.

No transaction is left open between articles, nor while ``wait`` waits for the workers: on
SQLite every transaction holds the write lock (``BEGIN IMMEDIATE``), and the running API must
be able to write meanwhile.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.errors import Conflict, Unprocessable
from knowledge.articles import flows, service
from knowledge.articles.models import Article
from knowledge.articles.schemas import ArticleCreate
from knowledge.articles.submit import wait_until_final
from knowledge.ingest import ParseError, collect_files, parse_faq_csv, parse_markdown
from staff.models import Agent
from workers.queue import TaskQueue

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
WAIT_S = 600.0
"""How long ``wait`` waits for one article's indexing task."""


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
                       settings: Settings, queue: TaskQueue, wait: bool = False,
                       progress: Callable[[Path], None] = lambda _: None) -> FilesImported:
    """Create or update articles from Markdown files (front matter: id, title, tags, lang,
    optionally ``kind: faq``) and FAQ CSVs (``question,answer``; ids ``faq:<row>`` as the
    plain import gives them), then publish the ones that are new or changed.

    ``wait``: return only once the workers have indexed what was published (someone must be
    working ``queue``), reporting each article whose task ended dead in ``failed``.
    """
    result = FilesImported()
    await session.commit()  # ends what the caller began (looking ``actor`` up)
    if actor is not None:
        session.expunge(actor)  # a rollback of one refused article must not expire it
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
                await _import_one(session, data, actor, result, settings=settings, queue=queue)
            except (Conflict, Unprocessable) as exc:
                await session.rollback()
                result.failed.append((f"{file}#{data.id}", exc.message))
    if wait:
        for article_id, task_id in zip(result.published, result.tasks, strict=True):
            try:
                status = await wait_until_final(queue, task_id, timeout_s=WAIT_S)
            except TimeoutError as exc:
                result.failed.append((article_id, str(exc)))
                continue
            if status["state"] == "dead":
                result.failed.append((article_id, f"not indexed: {status.get('error') or ''}"))
    return result


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return str(exc) or type(exc).__name__


async def _import_one(session: AsyncSession, data: ArticleCreate, actor: Agent | None,
                      result: FilesImported, *, settings: Settings,
                      queue: TaskQueue) -> None:
    """Save and publish the article unless it is unchanged."""
    actor_id = actor.id if actor is not None else None
    article = await session.get(Article, data.id)
    if article is None:
        article = await service.create_article(session, data=data, actor_id=actor_id)
        result.created.append(article.id)
    elif (service.same_content(article, title=data.title, tags=data.tags, body=data.body)
          and (article.lang, article.kind) == (data.lang, data.kind)
          and article.status != "deleted"):
        if article.published_version == article.version:
            result.unchanged.append(article.id)
            await session.commit()  # nothing written: ends the transaction the read began
            return
    else:
        article.lang, article.kind = data.lang, data.kind
        await service.edit_article(session, article_id=article.id, version=article.version,
                                   title=data.title, tags=data.tags, body=data.body,
                                   note=data.note, actor_id=actor_id)
        result.updated.append(article.id)
    _, task = await flows.publish(session, article_id=article.id, version=article.version,
                                  actor=actor, settings=settings, queue=queue)
    result.published.append(article.id)
    result.tasks.append(task.task_id)
