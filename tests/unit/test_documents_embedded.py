"""The embedded document index (SQLite FTS5 + numpy) against the DocumentIndex contract,
plus what only it promises: persistence across reopen and its bilingual analysis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from knowledge.documents.embedded import SQLiteDocumentIndex
from knowledge.documents.errors import ChunksNotWritten, DocumentIndexError
from knowledge.documents.fusion import fuse
from knowledge.documents.protocol import Chunk
from knowledge.documents.snippet import snippet
from knowledge.documents.tokenize import analyze, query_terms, stem
from tests.contract.document_index import (
    CORPUS,
    REFUND,
    RETURNS,
    WARRANTY_ZH,
    DocumentIndexContract,
    ids,
    same,
)

pytestmark = pytest.mark.unit


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[SQLiteDocumentIndex]:
    store = SQLiteDocumentIndex(tmp_path / "documents.sqlite3")
    yield store
    await store.close()


class TestSQLiteDocumentIndex(DocumentIndexContract):
    pass


async def test_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "documents.sqlite3"
    first = SQLiteDocumentIndex(path)
    await first.upsert(CORPUS)
    await first.delete([REFUND.id])
    await first.close()

    second = SQLiteDocumentIndex(path)
    try:
        assert await second.count() == len(CORPUS) - 1
        assert same(await second.get(WARRANTY_ZH.id), WARRANTY_ZH)
        assert ids(await second.search("保修"))[:1] == [WARRANTY_ZH.id]
        hits = await second.search("", vector=RETURNS.vector, k=1)
        assert ids(hits) == [RETURNS.id]
    finally:
        await second.close()


async def test_vectors_stay_in_step_with_writes(index: SQLiteDocumentIndex) -> None:
    await index.upsert(CORPUS)
    assert ids(await index.search("", vector=REFUND.vector, k=1)) == [REFUND.id]  # loads
    moved = Chunk(id="new#0", doc_id="new", title="t", text="x", lang="en",
                  vector=(0.0, 1.0, 0.0, 0.0))
    await index.upsert([moved])
    await index.delete([REFUND.id])
    assert ids(await index.search("", vector=REFUND.vector, k=1)) == [moved.id]
    await index.upsert([Chunk(id="new#0", doc_id="new", title="t", text="x", lang="en")])
    assert moved.id not in ids(await index.search("", vector=REFUND.vector, k=3))


async def test_vectors_of_another_dimension_are_refused(index: SQLiteDocumentIndex) -> None:
    await index.upsert(CORPUS)
    odd = Chunk(id="odd#0", doc_id="odd", title="t", text="x", lang="en", vector=(1.0, 0.0))
    with pytest.raises(ChunksNotWritten) as refused:
        await index.upsert([odd])
    assert list(refused.value.failed) == [odd.id]
    assert await index.get(odd.id) is None
    with pytest.raises(DocumentIndexError):
        await index.search("refund", vector=(1.0, 0.0))


async def test_many_chunks_in_one_upsert(index: SQLiteDocumentIndex) -> None:
    chunks = [Chunk(id=f"bulk#{i}", doc_id=f"bulk-{i % 7}", title=f"Item {i}",
                    text=f"Spare part number SP-{i:05d} fits model {i % 13}.", lang="en",
                    vector=(float(i % 5), 1.0, 0.0, 0.0)) for i in range(1_200)]
    await index.upsert(chunks)
    assert await index.count() == 1_200
    assert ids(await index.search("SP-00777")) == ["bulk#777"]
    assert len(await index.hashes("bulk-3")) == len([c for c in chunks if c.doc_id == "bulk-3"])
    assert await index.delete_document("bulk-3") == 171


def test_english_analysis() -> None:
    assert analyze("The RETURNS were returned, returning!") == ["return"] * 3
    assert analyze("Order PL-204817 shipped") == ["order", "pl-204817", "ship"]
    assert analyze("policies, policy; charges, charged") == ["policy", "policy"] + ["charg"] * 2
    assert analyze("in-ear AND OR NOT") == ["ear"]
    assert stem("address") == stem("addresses") == "address"


def test_chinese_analysis() -> None:
    tokens = analyze("无线耳机的保修期")
    assert {"无线", "耳机", "保修", "保修期", "修期"} <= set(tokens)
    assert query_terms("保修") == ["保修"]
    assert analyze("无线耳机的保修期") == tokens  # deterministic
    assert "pl-204817" in analyze("订单PL-204817已发货")


def test_snippet_marks_matches_in_the_original_text() -> None:
    text = "Nothing here. " * 30 + "Returned items are refunded."
    got = snippet(text, query_terms("return refunds"))
    assert "«Returned»" in got and "«refunded»" in got and got.startswith("…")
    assert snippet("无线耳机支持蓝牙", query_terms("无线")) == "«无线»耳机支持蓝牙"


def test_reciprocal_rank_fusion() -> None:
    fused = fuse([["a", "b", "c"], ["c", "a"]], 2)
    assert [item for item, _ in fused] == ["a", "c"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


async def test_sees_writes_of_another_connection(tmp_path: Path) -> None:
    """An import in another process must show up in a running server's vector search."""
    path = tmp_path / "documents.sqlite3"
    server, importer = SQLiteDocumentIndex(path), SQLiteDocumentIndex(path)
    try:
        await server.upsert(CORPUS)
        assert ids(await server.search("", vector=REFUND.vector, k=1)) == [REFUND.id]
        await importer.delete([REFUND.id])
        newer = Chunk(id="new#0", doc_id="new", title="Gift cards", text="Gift cards never expire.",
                      lang="en", vector=REFUND.vector)
        await importer.upsert([newer])
        assert ids(await server.search("", vector=REFUND.vector, k=1)) == [newer.id]
        assert ids(await server.search("gift cards")) == [newer.id]
    finally:
        await server.close()
        await importer.close()
