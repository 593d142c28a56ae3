"""Bring the knowledge stores up to date with files: help-centre articles, FAQs, policies and
the company graph. Incremental: unchanged chunks are neither re-embedded nor rewritten."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from knowledge import factory
from knowledge.embeddings import Embedder, E5Embedder
from knowledge.graph.company import load_company
from knowledge.ingest import ImportReport, import_documents, import_path, policy_documents
from web.core.config import Settings


async def import_into(settings: Settings, path: Path, *, embedder: Embedder | None = None,
                      progress: Callable[[Path], None] = lambda _: None) -> ImportReport:
    index = factory.document_index(settings)
    try:
        return await import_path(path, index=index, embedder=embedder or E5Embedder(),
                                 progress=progress)
    finally:
        await index.close()


async def sync_all(settings: Settings, *, embedder: Embedder | None = None,
                   progress: Callable[[Path], None] = lambda _: None
                   ) -> tuple[ImportReport, dict[str, int]]:
    embedder = embedder or E5Embedder()
    index = factory.document_index(settings)
    graph = factory.graph_store(settings)
    try:
        report = await import_path(settings.kb_dir, index=index, embedder=embedder,
                                   progress=progress)
        await import_documents(policy_documents(settings.company_data_dir), index=index,
                               embedder=embedder, report=report)
        counts = await load_company(graph, settings.company_data_dir)
        return report, counts
    finally:
        await index.close()
        await graph.close()
