"""The Elasticsearch document index against the DocumentIndex contract, on osmem-server.

osmem-server (PyPI ``osmem-server``) is an in-memory OpenSearch-API emulator: it starts in a
fraction of a second with no JVM. What it does not prove: ``dense_vector`` and kNN (refused,
so this runs with ``vectors=False`` and the hybrid tests skip), the ``smartcn`` analyzer (the
built-in ``cjk`` bigram analyzer stands in), and Elasticsearch's exact scoring and highlighting.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from knowledge.documents.errors import DocumentIndexUnavailable
from tests.contract.document_index import REFUND, DocumentIndexContract
from tests.stack import free_port

pytestmark = pytest.mark.integration
elasticsearch = pytest.importorskip("elasticsearch")
osmem_server = pytest.importorskip("osmem_server", reason="pip install osmem-server==0.1.6")

from elastic_transport import HttpxAsyncHttpNode  # noqa: E402

from knowledge.documents.elasticsearch import ElasticsearchDocumentIndex  # noqa: E402


class PlainJsonNode(HttpxAsyncHttpNode):
    """Test-only: the elasticsearch 9 client asks for ``application/vnd.elasticsearch+json;
    compatible-with=9``, which the emulator does not speak; send plain JSON instead."""

    async def perform_request(self, method: str, target: str, body: bytes | None = None,
                              headers: Any = None, **kwargs: Any) -> Any:
        if headers:
            headers = headers.copy()
            for name in ("accept", "content-type"):
                value = headers.get(name)
                if value and "compatible-with" in value:
                    plain = "x-ndjson" if "x-ndjson" in value else "json"
                    headers[name] = f"application/{plain}"
        return await super().perform_request(method, target, body, headers, **kwargs)


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    """One emulator per module on a free port; ``start`` returns once it is serving."""
    server = osmem_server.OsmemServer.start(addr=f"127.0.0.1:{free_port()}", japanese=False)
    try:
        yield server.url
    finally:
        server.close()
        if server.process.stdout:
            server.process.stdout.close()


@pytest.fixture
async def es_client(emulator_url: str) -> AsyncIterator[Any]:
    client = elasticsearch.AsyncElasticsearch(emulator_url, node_class=PlainJsonNode)
    yield client
    await client.close()


@pytest.fixture
async def index(es_client: Any) -> AsyncIterator[ElasticsearchDocumentIndex]:
    name = f"parley-test-{uuid.uuid4().hex[:12]}"
    store = ElasticsearchDocumentIndex("unused", name, chinese_analyzer="cjk", client=es_client,
                                       vectors=False)
    yield store
    await store.close()
    await es_client.indices.delete(index=name, ignore_unavailable=True)


class TestElasticsearchDocumentIndex(DocumentIndexContract):
    supports_vectors = False


async def test_index_is_created_with_explicit_mappings(index: ElasticsearchDocumentIndex,
                                                       es_client: Any) -> None:
    await index.upsert([REFUND])
    mapping = (await es_client.indices.get_mapping(index=index.index))[index.index]["mappings"]
    properties = mapping["properties"]
    assert properties["title"]["fields"]["zh"]["analyzer"] == "cjk"
    assert properties["text"]["analyzer"] == "english"
    assert properties["lang"]["type"] == properties["tags"]["type"] == "keyword"
    assert "vector" not in properties


async def test_real_elasticsearch_mapping_has_a_cosine_dense_vector() -> None:
    store = ElasticsearchDocumentIndex("http://127.0.0.1:9", dims=384)
    try:
        vector = store.mappings(384)["properties"]["vector"]
        assert vector == {"type": "dense_vector", "index": True, "similarity": "cosine",
                          "dims": 384}
        assert "dims" not in store.mappings(None)["properties"]["vector"]
        assert store.mappings(None)["properties"]["title"]["fields"]["zh"]["analyzer"] == "smartcn"
    finally:
        await store.close()


async def test_unreachable_server_is_unavailable() -> None:
    store = ElasticsearchDocumentIndex(f"http://127.0.0.1:{free_port()}", request_timeout=2)
    try:
        with pytest.raises(DocumentIndexUnavailable):
            await store.search("refund")
    finally:
        await store.close()
