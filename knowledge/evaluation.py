"""``parley kb eval``: how well Parley answers from a knowledge base, measured.

``evaluate`` imports the given files and folders (anything ``parley kb import`` takes) into a
throwaway embedded index in a temporary folder: the live knowledge base is never read or
written, even where Elasticsearch or Neo4j are configured. Files are parsed and chunked as
``parley kb import`` does (``ingest.import_path``) and embedded with the embedder the answerer
asks with. Every question then goes through the answer path production uses
(``factory.answerer``: retrieval, the configured generators, the gate), one at a time; a
question without ``lang`` is asked in Chinese when it holds Chinese characters, else English.

The report's shares are floats in 0..1 rounded to 4 places, ``None`` when nothing is counted:

- ``right``, ``wrong`` (answered, but not right) and ``abstained_answerable`` are shares of the
  answerable questions; ``abstained_unanswerable`` a share of the unanswerable ones;
- ``cited``: of all answers sent, those with at least one citation;
- ``source_top1``: of the answered answerable questions that name a ``source``, those whose
  first citation is it; ``recall_at_5``: of the answerable questions that name one, those where
  it is among the five best documents the index returns;
- ``p50_ms`` / ``p95_ms``: the time to answer, per question. The first question is asked once
  before timing, so loading models is not counted.

Besides: ``generator`` (answers sent by each generator, the configured ones first),
``kb_chunks``, ``import_s``, ``import_chunks_per_s`` and ``import_failed`` (file, why).

Per question, ``right`` is whether the reply states an answer, or, for an unanswerable
question, whether it abstained.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import NotFound
from knowledge import factory
from knowledge.answer import KnowledgeAnswerer
from knowledge.documents.protocol import DocumentIndex
from knowledge.embeddings import Embedder
from knowledge.errors import KnowledgeError
from knowledge.evaluation_questions import Question, is_right
from knowledge.ingest import ImportReport, collect_files, import_path
from nlu.patterns import detect_language

Progress = Callable[[str, int, int], None]
"""Called with the stage ("import" or "questions"), how many are done, and the total."""


class KnowledgePathNotFound(KnowledgeError, NotFound):
    code = "path_not_found"


@dataclass(frozen=True)
class QuestionResult:
    question: str
    lang: str
    answers: tuple[str, ...]
    reply: str
    abstained: bool
    reason: str
    citations: tuple[str, ...]  # source ids, in the answer's order
    right: bool
    latency_ms: float
    generator: str
    source: str | None
    source_first: bool | None  # the expected source is the first citation
    recall_at_5: bool | None  # the expected source is among the index's top 5 documents


@dataclass
class Report:
    n: int
    answerable: int
    unanswerable: int
    right: float | None
    wrong: float | None
    abstained_answerable: float | None
    abstained_unanswerable: float | None
    cited: float | None
    source_top1: float | None
    p50_ms: float | None
    p95_ms: float | None
    recall_at_5: float | None
    generator: dict[str, int]  # answers sent by each generator, the configured ones first
    kb_chunks: int
    import_s: float
    import_chunks_per_s: float | None
    import_failed: list[tuple[str, str]]  # (file, why) for files that could not be imported
    results: list[QuestionResult] = field(repr=False)

    def figures(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "results"}

    def write(self, path: Path, about: Mapping[str, Any] | None = None) -> Path:
        """The figures (after ``about``: what was measured) to ``path`` and each question's
        result to ``<stem>.questions.jsonl`` beside it; returns the second path."""
        body = {**(about or {}), **self.figures()}
        path.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        per_question = path.with_suffix(".questions.jsonl")
        with per_question.open("w", encoding="utf-8") as out:
            for result in self.results:
                out.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
        return per_question


def _share(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def _percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest rank: the smallest value at least ``p`` of the values do not exceed."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(math.ceil(p * len(ordered)) - 1, 0)], 1)


def throwaway_settings(settings: Settings, folder: Path) -> Settings:
    """``settings`` with every store embedded in ``folder``."""
    return settings.model_copy(update={
        "var_dir": folder, "database_url": f"sqlite:///{folder / 'parley.db'}",
        "elasticsearch_url": "", "neo4j_url": "", "kafka_bootstrap": "", "broker_url": ""})


def _check_exist(paths: Sequence[Path]) -> None:
    for path in paths:
        if not Path(path).exists():
            raise KnowledgePathNotFound(f"{path} does not exist")


async def _top_documents(index: DocumentIndex, embedder: Embedder, question: str,
                         lang: str, k: int = 5) -> list[str]:
    """The ``k`` best documents for a question, searched as the answerer searches."""
    vector = embedder.embed([question], query=True)[0].tolist()
    hits = (await index.search(question, vector=vector, k=4 * k, lang=lang)
            or await index.search(question, vector=vector, k=4 * k))
    return list(dict.fromkeys(h.chunk.doc_id for h in hits))[:k]


async def _import(paths: Sequence[Path], index: DocumentIndex, embedder: Embedder,
                  progress: Progress) -> ImportReport:
    total = sum(len(collect_files(p)) for p in paths)
    done = 0

    def step(_: Path) -> None:
        nonlocal done
        done += 1
        progress("import", done, total)

    report = ImportReport()
    for path in paths:
        part = await import_path(path, index=index, embedder=embedder, progress=step)
        report.added += part.added
        report.failed += part.failed
    return report


def _figures(results: list[QuestionResult]) -> dict[str, Any]:
    answerable = [r for r in results if r.answers]
    unanswerable = [r for r in results if not r.answers]
    answered = [r for r in results if not r.abstained]
    sourced = [r for r in answerable if r.source is not None]
    sourced_answered = [r for r in sourced if not r.abstained]
    latencies = [r.latency_ms for r in results]
    return {
        "n": len(results), "answerable": len(answerable), "unanswerable": len(unanswerable),
        "right": _share(sum(r.right for r in answerable), len(answerable)),
        "wrong": _share(sum(not r.abstained and not r.right for r in answerable),
                        len(answerable)),
        "abstained_answerable": _share(sum(r.abstained for r in answerable), len(answerable)),
        "abstained_unanswerable": _share(sum(r.abstained for r in unanswerable),
                                         len(unanswerable)),
        "cited": _share(sum(bool(r.citations) for r in answered), len(answered)),
        "source_top1": _share(sum(bool(r.source_first) for r in sourced_answered),
                              len(sourced_answered)),
        "p50_ms": _percentile(latencies, 0.5), "p95_ms": _percentile(latencies, 0.95),
        "recall_at_5": _share(sum(bool(r.recall_at_5) for r in sourced), len(sourced)),
    }


async def evaluate(kb_paths: Sequence[Path], questions: Sequence[Question], *,
                   settings: Settings, limit: int | None = None,
                   progress: Progress | None = None) -> Report:
    """Import ``kb_paths`` into a throwaway index and answer the first ``limit`` questions
    (all of them when ``None``) as production would."""
    _check_exist(kb_paths)
    asked = list(questions)[:limit] if limit is not None else list(questions)
    report_progress = progress or (lambda _stage, _done, _total: None)
    with tempfile.TemporaryDirectory(prefix="parley-eval-") as folder:
        answerer = factory.answerer(throwaway_settings(settings, Path(folder)))
        try:
            if not isinstance(answerer, KnowledgeAnswerer):
                raise KnowledgeError("kb eval needs the knowledge answerer's index and embedder")
            # Imported with the embedder the questions are asked with, into the index read.
            index, embedder = answerer.index, answerer.embedder
            started = time.perf_counter()
            imported = await _import([Path(p) for p in kb_paths], index, embedder,
                                     report_progress)
            import_s = time.perf_counter() - started
            chunks = await index.count()
            if asked:  # load the models before the clock runs
                await answerer.answer(asked[0].question, lang=_lang(asked[0]))
            results = []
            for number, question in enumerate(asked, 1):
                results.append(await _ask(answerer, question))
                report_progress("questions", number, len(asked))
            configured = [g.name for g in answerer.generators]
        finally:
            await answerer.close()
    answered_by = dict.fromkeys(configured, 0)
    for result in results:
        if not result.abstained:
            answered_by[result.generator] = answered_by.get(result.generator, 0) + 1
    return Report(**_figures(results), generator=answered_by, kb_chunks=chunks,
                  import_s=round(import_s, 2),
                  import_chunks_per_s=(round(imported.added / import_s, 1)
                                       if imported.added and import_s > 0 else None),
                  import_failed=imported.failed, results=results)


def _lang(question: Question) -> str:
    return question.lang or detect_language(question.question)


async def _ask(answerer: KnowledgeAnswerer, question: Question) -> QuestionResult:
    lang = _lang(question)
    started = time.perf_counter()
    answer = await answerer.answer(question.question, lang=lang)
    latency_ms = (time.perf_counter() - started) * 1000
    cited = tuple(c["source_id"] for c in answer.citations)
    expected = question.source if question.answerable else None
    recall = None
    if expected is not None:
        recall = expected in await _top_documents(answerer.index, answerer.embedder,
                                                  question.question, lang)
    right = (is_right(answer.text, question.answers) and not answer.abstained
             if question.answerable else answer.abstained)
    return QuestionResult(
        question=question.question, lang=lang, answers=question.answers, reply=answer.text,
        abstained=answer.abstained, reason=answer.reason, citations=cited, right=right,
        latency_ms=round(latency_ms, 1), generator=answer.generator, source=question.source,
        source_first=(cited[:1] == (expected,)) if expected is not None else None,
        recall_at_5=recall)
