"""Retrieval latency of the embedded document index at 50,000 chunks.

Fills a fresh SQLite index with the demo knowledge base plus synthetic chunks (sentences
recombined from the real articles, English and Chinese, with random unit vectors: latency
does not depend on what the vectors mean), then times hybrid searches (BM25 + vector kNN +
reciprocal rank fusion) for the questions of the demo's eval/kb_qa.yml
(examples/nimbus-home), embedding each query with MiniLM as the product does (embedding time
reported separately).

    .venv/bin/python bench/retrieval_latency.py [--chunks 50000] [--queries 300]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.turn_latency import percentile
from core.config import DEMO_PROJECT
from knowledge.documents.embedded import SQLiteDocumentIndex
from knowledge.documents.protocol import Chunk
from knowledge.embeddings import E5Embedder
from knowledge.ingest import chunk_document, collect_files, parse_markdown
from knowledge.text import split_sentences


async def main(total: int, queries: int) -> None:
    rng = random.Random(7)
    np_rng = np.random.default_rng(7)
    real = [c for f in collect_files(DEMO_PROJECT / "kb") if f.suffix == ".md"
            for d in parse_markdown(f) for c in chunk_document(d)]
    sentences = {"en": [], "zh": []}
    for chunk in real:
        sentences[chunk.lang].extend(split_sentences(chunk.text))
    embedder = E5Embedder()
    with tempfile.TemporaryDirectory() as tmp:
        index = SQLiteDocumentIndex(Path(tmp) / "documents.db")
        vectors = embedder.embed([f"{c.title}\n{c.text}" for c in real])
        await index.upsert([Chunk(**{**c.__dict__, "vector": tuple(map(float, v))})
                            for c, v in zip(real, vectors, strict=True)])
        started = time.perf_counter()
        batch: list[Chunk] = []
        for i in range(total - len(real)):
            lang = "zh" if i % 3 == 0 else "en"
            text = " ".join(rng.sample(sentences[lang], 4))
            vector = np_rng.standard_normal(384).astype(np.float32)
            vector /= np.linalg.norm(vector)
            batch.append(Chunk(id=f"synthetic-{i}#0", doc_id=f"synthetic-{i}",
                               title=f"Article {i}", text=text, lang=lang,
                               vector=tuple(map(float, vector))))
            if len(batch) == 2000:
                await index.upsert(batch)
                batch = []
        if batch:
            await index.upsert(batch)
        print(f"indexed {await index.count()} chunks in {time.perf_counter() - started:.1f} s")
        qa = yaml.safe_load((DEMO_PROJECT / "eval" / "kb_qa.yml").read_text())["questions"]
        embed_ms, search_ms = [], []
        for i in range(queries):
            item = qa[i % len(qa)]
            t0 = time.perf_counter()
            vector = embedder.embed([item["q"]], query=True)[0].tolist()
            t1 = time.perf_counter()
            await index.search(item["q"], vector=vector, k=5, lang=item["lang"])
            t2 = time.perf_counter()
            embed_ms.append((t1 - t0) * 1000)
            search_ms.append((t2 - t1) * 1000)
        print(f"hybrid search over {total} chunks, {queries} queries: "
              f"p50={percentile(search_ms, .5):.1f} ms p95={percentile(search_ms, .95):.1f} ms "
              f"mean={statistics.mean(search_ms):.1f} ms; query embedding "
              f"p50={percentile(embed_ms, .5):.1f} ms p95={percentile(embed_ms, .95):.1f} ms")
        await index.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.chunks, args.queries))
