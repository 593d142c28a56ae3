"""Bring the knowledge stores up to date with files: help-centre articles, FAQs, policies and
the company graph. Incremental: unchanged chunks are neither re-embedded nor rewritten."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.config import Settings
from knowledge import factory
from knowledge.embeddings import Embedder
from knowledge.graph.company import load_company
from knowledge.ingest import ImportReport, import_documents, import_path, policy_documents


async def import_into(settings: Settings, path: Path, *, embedder: Embedder | None = None,
                      progress: Callable[[Path], None] = lambda _: None) -> ImportReport:
    index = factory.document_index(settings)
    embedder = embedder or factory.embedder(settings)
    try:
        return await import_path(path, index=index, embedder=embedder, progress=progress,
                                 sentences=factory.sentence_vectors(settings, embedder))
    finally:
        await index.close()


async def editor_owned_ids(settings: Settings) -> frozenset[str]:
    """Ids of documents edited in the knowledge-base editor: its published versions win over
    the seed files, so a restart never undoes an edit."""
    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from core import db
    from knowledge.articles.models import Article

    engine = db.create_engine(settings.database_url)
    try:
        async with db.sessionmaker(engine)() as session:
            return frozenset((await session.execute(select(Article.id))).scalars())
    except (OperationalError, ProgrammingError):
        return frozenset()  # no database yet: nothing was edited
    finally:
        await engine.dispose()


async def sync_all(settings: Settings, *, embedder: Embedder | None = None,
                   progress: Callable[[Path], None] = lambda _: None
                   ) -> tuple[ImportReport, dict[str, int]]:
    embedder = embedder or factory.embedder(settings)
    index = factory.document_index(settings)
    graph = factory.graph_store(settings)
    edited = await editor_owned_ids(settings)
    try:
        sentences = factory.sentence_vectors(settings, embedder)
        report = (await import_path(settings.kb_dir, index=index, embedder=embedder,
                                    progress=progress, skip_ids=edited, sentences=sentences)
                  if settings.kb_dir.exists() else ImportReport())
        await import_documents([d for d in policy_documents(settings.company_data_dir)
                                if d.id not in edited], index=index, embedder=embedder,
                               report=report, sentences=sentences)
        counts = await load_company(graph, settings.company_data_dir)
        return report, counts
    finally:
        await index.close()
        await graph.close()
