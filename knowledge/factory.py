"""Build the knowledge stores and the answerer the settings ask for.

Each factory returns the protocol, not the class: the embedded store (SQLite under
``<var_dir>/kb/``) unless a server is configured. Vendor modules are imported only when
their server is.
"""

from __future__ import annotations

from core.config import Settings
from knowledge.answer import Answerer
from knowledge.documents.protocol import DocumentIndex
from knowledge.generator.protocol import Generator
from knowledge.graph.protocol import GraphStore


def document_index(settings: Settings) -> DocumentIndex:
    if settings.elasticsearch_url:
        from knowledge.documents.elasticsearch import ElasticsearchDocumentIndex

        return ElasticsearchDocumentIndex(
            settings.elasticsearch_url, settings.elasticsearch_index,
            chinese_analyzer=settings.elasticsearch_chinese_analyzer)
    from knowledge.documents.embedded import SQLiteDocumentIndex

    return SQLiteDocumentIndex(settings.var_dir / "kb" / "documents.db")


def graph_store(settings: Settings) -> GraphStore:
    if settings.neo4j_url:
        from knowledge.graph.neo4j import Neo4jGraphStore

        return Neo4jGraphStore(settings.neo4j_url, user=settings.neo4j_user,
                               password=settings.neo4j_password.get_secret_value() or None,
                               database=settings.neo4j_database)
    from knowledge.graph.embedded import SQLiteGraphStore

    return SQLiteGraphStore(settings.var_dir / "kb" / "graph.db")


def generators(settings: Settings) -> list[Generator]:
    """vLLM when configured, then SmolLM2 on the CPU when wanted and installed; the answerer
    always adds the extractive generator last."""
    chain: list[Generator] = []
    if settings.generator_url:
        from knowledge.generator.openai_compatible import OpenAICompatibleGenerator

        chain.append(OpenAICompatibleGenerator(
            settings.generator_url, settings.generator_model,
            api_key=settings.generator_api_key.get_secret_value(),
            timeout_s=settings.generator_timeout_s))
    wanted = settings.cpu_llm == "always" or (settings.cpu_llm == "auto"
                                              and bool(settings.generator_url))
    if wanted:
        from knowledge.generator.local import LocalGenerator, smollm_dir

        if smollm_dir() is not None:
            chain.append(LocalGenerator())
    return chain


def answerer(settings: Settings, *, graph: GraphStore | None = None) -> Answerer:
    """``graph``: a store this process already holds (else one of its own); closing the
    answerer closes it."""
    from knowledge.answer import KnowledgeAnswerer
    from knowledge.embeddings import E5Embedder

    return KnowledgeAnswerer(index=document_index(settings), embedder=E5Embedder(),
                             graph=graph or graph_store(settings),
                             generators=generators(settings))
