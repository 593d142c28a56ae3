"""Articles, their versions and the audit log (keyword-only functions; callers commit).

Every save writes a new, immutable version; an edit names the version it started from and
is refused with ``version_conflict`` when someone saved a newer one in the meantime. The
``(article_id, version)`` primary key makes two concurrent saves of the same version fail
in the database too, not only in this check.
"""

from __future__ import annotations

import difflib
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.errors import Conflict, NotFound
from core.redact import CARD
from knowledge.articles.models import Article, ArticleVersion, KbAudit
from knowledge.articles.schemas import ArticleCreate, FindingPublic
from knowledge.pii import find_personal_data
from knowledge.safety import instruction_sentences
from staff.models import Agent


def audit(session: AsyncSession, *, actor_id: int | None, action: str, target: str,
          detail: dict[str, Any] | None = None) -> KbAudit:
    row = KbAudit(actor_id=actor_id, action=action, target=target, detail=detail or {})
    session.add(row)
    return row


async def get_article(session: AsyncSession, *, article_id: str) -> Article:
    article = await session.get(Article, article_id)
    if article is None:
        raise NotFound(f"No article {article_id!r}.", code="article_not_found")
    return article


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_articles(session: AsyncSession, *, query: str | None = None,
                        lang: str | None = None, kind: str | None = None,
                        status: str | None = None, limit: int = 50,
                        offset: int = 0) -> tuple[list[Article], int]:
    """Newest first; deleted ones only when asked for by ``status``."""
    stmt = select(Article)
    if status:
        stmt = stmt.where(Article.status == status)
    else:
        stmt = stmt.where(Article.status != "deleted")
    if lang:
        stmt = stmt.where(Article.lang == lang)
    if kind:
        stmt = stmt.where(Article.kind == kind)
    for term in (query or "").split()[:8]:
        pattern = f"%{_escape_like(term.lower())}%"
        stmt = stmt.where(or_(func.lower(Article.title).like(pattern, escape="\\"),
                              func.lower(Article.body).like(pattern, escape="\\"),
                              func.lower(Article.id).like(pattern, escape="\\")))
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = await session.execute(stmt.order_by(Article.updated_at.desc(), Article.id)
                                 .limit(limit).offset(offset))
    return list(rows.scalars()), total


async def _write_version(session: AsyncSession, *, article: Article, title: str,
                         tags: list[str], body: str, actor_id: int | None,
                         note: str) -> ArticleVersion:
    version = ArticleVersion(article_id=article.id, version=(article.version or 0) + 1,
                             title=title, tags=list(tags), body=body, author_id=actor_id,
                             note=note)
    article.version = version.version
    article.title, article.tags, article.body = title, list(tags), body
    article.updated_at, article.updated_by = utcnow(), actor_id
    if article.status == "deleted":
        article.status = "draft"  # a new version brings a deleted article back, unpublished
    session.add(version)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("Someone saved this article at the same time; reload it.",
                       code="version_conflict") from exc
    return version


async def create_article(session: AsyncSession, *, data: ArticleCreate,
                         actor_id: int | None) -> Article:
    if await session.get(Article, data.id) is not None:
        raise Conflict(f"An article {data.id!r} exists.", code="article_exists")
    article = Article(id=data.id, kind=data.kind, lang=data.lang, title=data.title,
                      tags=data.tags, body=data.body, status="draft", version=0)
    session.add(article)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"An article {data.id!r} exists.", code="article_exists") from exc
    await _write_version(session, article=article, title=data.title, tags=data.tags,
                         body=data.body, actor_id=actor_id, note=data.note or "Created")
    audit(session, actor_id=actor_id, action="create", target=article.id,
          detail={"version": 1, "kind": article.kind, "lang": article.lang})
    return article


def check_version(article: Article, version: int | None) -> None:
    if version is not None and version != article.version:
        raise Conflict(f"This article changed since version {version}; the latest is "
                       f"{article.version}. Reload it and make the change again.",
                       code="version_conflict",
                       details={"your_version": version, "latest_version": article.version})


def same_content(article: Article, *, title: str, tags: list[str], body: str) -> bool:
    return (article.title, list(article.tags), article.body) == (title, list(tags), body)


async def edit_article(session: AsyncSession, *, article_id: str, version: int, title: str,
                       tags: list[str], body: str, note: str,
                       actor_id: int | None) -> tuple[Article, bool]:
    """A new version from ``version``; ``(article, False)`` when nothing changed."""
    article = await get_article(session, article_id=article_id)
    check_version(article, version)
    if same_content(article, title=title, tags=tags, body=body) and article.status != "deleted":
        return article, False
    written = await _write_version(session, article=article, title=title, tags=tags, body=body,
                                   actor_id=actor_id, note=note)
    audit(session, actor_id=actor_id, action="edit", target=article.id,
          detail={"version": written.version, "from_version": version,
                  **({"note": note} if note else {})})
    return article, True


async def versions(session: AsyncSession, *, article_id: str) -> list[ArticleVersion]:
    rows = await session.execute(select(ArticleVersion)
                                 .where(ArticleVersion.article_id == article_id)
                                 .order_by(ArticleVersion.version.desc()))
    return list(rows.scalars())


async def get_version(session: AsyncSession, *, article_id: str,
                      version: int) -> ArticleVersion:
    await get_article(session, article_id=article_id)
    row = await session.get(ArticleVersion, (article_id, version))
    if row is None:
        raise NotFound(f"Article {article_id!r} has no version {version}.",
                       code="version_not_found")
    return row


async def restore_version(session: AsyncSession, *, article_id: str, version: int,
                          base_version: int | None, actor_id: int | None) -> Article:
    """A new version with the content of ``version`` (history is never rewritten)."""
    article = await get_article(session, article_id=article_id)
    check_version(article, base_version)
    old = await get_version(session, article_id=article_id, version=version)
    written = await _write_version(session, article=article, title=old.title, tags=old.tags,
                                   body=old.body, actor_id=actor_id,
                                   note=f"Restored version {version}")
    audit(session, actor_id=actor_id, action="restore", target=article.id,
          detail={"version": written.version, "restored": version})
    return article


def _lines(version: ArticleVersion) -> list[str]:
    return [f"Title: {version.title}", f"Tags: {', '.join(version.tags)}", "",
            *version.body.splitlines()]


async def diff(session: AsyncSession, *, article_id: str, from_version: int,
               to_version: int) -> list[str]:
    old = await get_version(session, article_id=article_id, version=from_version)
    new = await get_version(session, article_id=article_id, version=to_version)
    return list(difflib.unified_diff(_lines(old), _lines(new), fromfile=f"v{from_version}",
                                     tofile=f"v{to_version}", lineterm=""))


def _luhn(digits: str) -> bool:
    total = sum(int(d) if i % 2 == 0 else sum(divmod(int(d) * 2, 10))
                for i, d in enumerate(reversed(digits)))
    return total % 10 == 0


def _excerpt(text: str, start: int, end: int, around: int = 30) -> str:
    """The found text with up to ``around`` characters either side, within its line."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = len(text) if (n := text.find("\n", end)) < 0 else n
    head, tail = max(line_start, start - around), min(line_end, end + around)
    excerpt = " ".join(text[head:tail].split())
    return ("…" if head > line_start else "") + excerpt + ("…" if tail < line_end else "")


def check_content(*, title: str, body: str) -> list[FindingPublic]:
    """What an author should see before publishing: sentences addressed to the model
    (``knowledge.safety``), and other people's personal data: what ``knowledge.pii`` masks
    (e-mail addresses, phone numbers, labelled names; not role mailboxes or the company's
    lines) and card numbers (``core.redact``'s pattern, Luhn-checked so that tracking
    numbers are not reported)."""
    text = f"{title}\n\n{body}"
    findings = [FindingPublic(kind="instruction", what="instruction", excerpt=sentence)
                for sentence in instruction_sentences(text)]
    cards = [m.span() for m in CARD.finditer(text)
             if _luhn("".join(c for c in m.group() if c.isdigit()))]
    found = [("card", start, end) for start, end in cards] + [
        (what, start, end) for what, start, end in find_personal_data(text)
        if not any(s < end and start < e for s, e in cards)]
    findings += [FindingPublic(kind="personal_data", what=what,  # type: ignore[arg-type]
                               excerpt=_excerpt(text, start, end))
                 for what, start, end in sorted(found, key=lambda f: (f[1], f[2]))]
    return findings


def mark_published(session: AsyncSession, *, article: Article, actor_id: int | None,
                   task: dict[str, Any]) -> None:
    article.status, article.published_version = "published", article.version
    article.updated_at, article.updated_by = utcnow(), actor_id
    audit(session, actor_id=actor_id, action="publish", target=article.id,
          detail={"version": article.version, **task})


def mark_deleted(session: AsyncSession, *, article: Article, actor_id: int | None,
                 task: dict[str, Any]) -> None:
    article.status, article.published_version = "deleted", None
    article.updated_at, article.updated_by = utcnow(), actor_id
    audit(session, actor_id=actor_id, action="delete", target=article.id,
          detail={"version": article.version, **task})


async def audit_log(session: AsyncSession, *, target: str | None = None,
                    action: str | None = None, limit: int = 50,
                    offset: int = 0) -> tuple[list[tuple[KbAudit, str | None]], int]:
    """Newest first, each row with its actor's name."""
    stmt = select(KbAudit, Agent.name).outerjoin(Agent, Agent.id == KbAudit.actor_id)
    if target:
        stmt = stmt.where(KbAudit.target == target)
    if action:
        stmt = stmt.where(KbAudit.action == action)
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = await session.execute(stmt.order_by(KbAudit.id.desc()).limit(limit).offset(offset))
    return [(row, name) for row, name in rows.all()], total
