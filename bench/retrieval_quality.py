"""Retrieval and grounded-answer quality on the demo knowledge base.

Builds a fresh embedded index (SQLite FTS5 + MiniLM vectors) and graph from the demo
project's kb/ and company/ (examples/nimbus-home) in a temporary folder, then runs every
question of its eval/kb_qa.yml:

- retrieval: recall@5 (an expected source among the top 5 documents) and MRR, per language;
- answers: share answered / abstained, share of sent answers whose every sentence passed the
  groundedness gate, share of sent answers with a citation, share stating the expected fact,
  and — before the gate — the share of generated answers that were fully supported.

    .venv/bin/python bench/retrieval_quality.py [--generator extractive|cpu] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.config import DEMO_PROJECT
from knowledge.answer import KnowledgeAnswerer
from knowledge.documents.embedded import SQLiteDocumentIndex
from knowledge.embeddings import E5Embedder
from knowledge.graph.embedded import SQLiteGraphStore
from knowledge.grounding import check_sentence
from knowledge.ingest import ImportReport, import_documents, import_path, policy_documents
from knowledge.text import split_sentences


async def main(generator: str, limit: int | None) -> None:
    qa = yaml.safe_load((DEMO_PROJECT / "eval" / "kb_qa.yml").read_text())
    questions = qa["questions"][:limit]
    embedder = E5Embedder()
    with tempfile.TemporaryDirectory() as tmp:
        index = SQLiteDocumentIndex(Path(tmp) / "documents.db")
        graph = SQLiteGraphStore(Path(tmp) / "graph.db")
        started = time.perf_counter()
        report = await import_path(DEMO_PROJECT / "kb", index=index, embedder=embedder)
        await import_documents(policy_documents(DEMO_PROJECT / "company"), index=index,
                               embedder=embedder, report=ImportReport())
        print(f"indexed {report.documents} documents, {await index.count()} chunks in "
              f"{time.perf_counter() - started:.1f} s")
        generators = []
        if generator == "cpu":
            from knowledge.generator.local import LocalGenerator

            generators.append(LocalGenerator())
        answerer = KnowledgeAnswerer(index=index, embedder=embedder, graph=graph,
                                     generators=generators)
        per_lang: dict[str, list[tuple[int, float]]] = {}
        answered = supported = cited = stated = raw_supported = 0
        latencies = []
        for item in questions:
            vector = embedder.embed([item["q"]], query=True)[0].tolist()
            t0 = time.perf_counter()
            hits = await index.search(item["q"], vector=vector, k=20, lang=item["lang"])
            latencies.append((time.perf_counter() - t0) * 1000)
            docs = list(dict.fromkeys(h.chunk.doc_id for h in hits))[:5]  # top 5 documents
            rank = next((i + 1 for i, d in enumerate(docs) if d in item["expected"]), 0)
            per_lang.setdefault(item["lang"], []).append((int(rank > 0), 1 / rank if rank else 0))
            answer = await answerer.answer(item["q"], lang=item["lang"])
            if answer.checks:
                raw_supported += all(c.supported for c in answer.checks)
            if answer.abstained:
                continue
            answered += 1
            # Re-check what was sent, independently of the flow that produced it.
            sources = {i: c["snippet"] for i, c in enumerate(answer.citations)}
            full = {i: s.text for i, s in enumerate(await answerer.retrieve(
                item["q"], lang=item["lang"]))}
            supported += all(check_sentence(s, full or sources).supported
                             for s in split_sentences(answer.text))
            cited += bool(answer.citations)
            stated += all(f in answer.text for f in item.get("answer_contains", []))
        n = len(questions)
        for lang, rows in sorted(per_lang.items()):
            print(f"{lang}: n={len(rows):3d} recall@5={statistics.mean(r for r, _ in rows):.3f} "
                  f"MRR={statistics.mean(m for _, m in rows):.3f}")
        every = [r for rows in per_lang.values() for r in rows]
        print(f"all: n={n:3d} recall@5={statistics.mean(r for r, _ in every):.3f} "
              f"MRR={statistics.mean(m for _, m in every):.3f}  "
              f"search p50={statistics.median(latencies):.1f} ms")
        name = answerer.generators[0].name if answerer.generators else "extractive"
        print(f"answers ({name}): answered {answered}/{n}, every sentence "
              f"supported {supported}/{answered}, cited {cited}/{answered}, stated the expected "
              f"fact {stated}/{answered}; generator output fully supported before the gate "
              f"{raw_supported}/{n}")
        await index.close()
        await graph.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generator", choices=["extractive", "cpu"], default="extractive")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    asyncio.run(main(args.generator, args.limit))
