"""Build the knowledge stores and the answerer the settings ask for."""

from __future__ import annotations

from core.config import Settings


def document_index(settings: Settings):  # type: ignore[no-untyped-def]
    if settings.elasticsearch_url:
        from knowledge.documents.elasticsearch import ElasticsearchDocumentIndex

        return ElasticsearchDocumentIndex(
            settings.elasticsearch_url, settings.elasticsearch_index,
            chinese_analyzer=settings.elasticsearch_chinese_analyzer)
    from knowledge.documents.embedded import SQLiteDocumentIndex

    return SQLiteDocumentIndex(settings.var_dir / "kb" / "documents.db")


def graph_store(settings: Settings):  # type: ignore[no-untyped-def]
    if settings.neo4j_url:
        from knowledge.graph.neo4j import Neo4jGraphStore

        return Neo4jGraphStore(settings.neo4j_url, user=settings.neo4j_user,
                               password=settings.neo4j_password.get_secret_value() or None,
                               database=settings.neo4j_database)
    from knowledge.graph.embedded import SQLiteGraphStore

    return SQLiteGraphStore(settings.var_dir / "kb" / "graph.db")


def generators(settings: Settings) -> list:  # type: ignore[type-arg]
    chain: list = []  # type: ignore[type-arg]
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


def answerer(settings: Settings):  # type: ignore[no-untyped-def]
    from knowledge.answer import KnowledgeAnswerer
    from knowledge.embeddings import E5Embedder

    return KnowledgeAnswerer(index=document_index(settings), embedder=E5Embedder(),
                             graph=graph_store(settings), generators=generators(settings))
