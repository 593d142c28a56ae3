"""Answer quality on public data Parley was not tuned on, through ``parley kb eval``'s code.

    .venv/bin/python bench/answer_quality.py --dataset squad --split report --sample 300
    PARLEY_CPU_LLM=always .venv/bin/python bench/answer_quality.py --dataset cmrc --sample 200

Open-domain: every paragraph of the dataset becomes one Markdown document of one knowledge
base, whichever questions are asked, and no question names its paragraph.

- ``squad``: ../shared/datasets/squad2_dev_half (English). Paragraph ``n`` of article ``A`` is
  document ``sq-<a>-<n>`` titled with the article's title; a question's answers are its gold
  answer texts, ``[]`` when it is unanswerable; its source is its paragraph.
- ``cmrc``: ../shared/datasets/cmrc2018_dev (Chinese), the same way: document ``cm-<paragraph
  id>`` (one paragraph per article there).
- ``demo``: the demo project's eval/kb_qa.yml on its kb/ (examples/nimbus-home);
  ``answer_contains`` are the answers (a reply stating any one of them is right), the source
  is given where one document is expected.

Each dataset is split by article: the third of the articles with the smallest SHA-256 of the
article key (SQuAD and demo: the title or expected document; CMRC: the paragraph id) is
``tune``, the other two thirds ``report``. Tune on ``tune``; quote ``report``. ``--sample N``
asks a random sample of N questions of the split (seed 2018). The generators are the ones the
settings configure, as in production (``PARLEY_CPU_LLM=always`` for the CPU model).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.cli import console, staged_progress
from core.config import DEMO_PROJECT, ROOT, get_settings
from knowledge.evaluation import Report, evaluate
from knowledge.evaluation_questions import Question

DATASETS = ROOT.parent / "shared" / "datasets"
SQUAD = DATASETS / "squad2_dev_half" / "dev-v2.0.json"
CMRC = DATASETS / "cmrc2018_dev" / "cmrc2018_dev.json"
SEED = 2018
TUNE_SHARE = 1 / 3


@dataclass(frozen=True)
class Paragraph:
    id: str
    title: str
    text: str
    lang: str
    article: str  # the key the split is made on


@dataclass(frozen=True)
class Case:
    article: str
    question: Question


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _unique(texts: Iterator[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in texts if t.strip()))


def squad_like(path: Path, *, prefix: str, lang: str
               ) -> tuple[list[Paragraph], list[Case]]:
    """Paragraphs and questions of a SQuAD-format file."""
    paragraphs, cases = [], []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        title = str(article.get("title") or "").replace("_", " ")
        for n, paragraph in enumerate(article["paragraphs"]):
            if prefix == "cm":  # one paragraph an article, with an id of its own
                doc_id, key = f"cm-{_slug(paragraph['id'])}", paragraph["id"]
            else:
                doc_id, key = f"{prefix}-{_slug(title)}-{n}", title
            paragraphs.append(Paragraph(doc_id, title or doc_id, paragraph["context"], lang,
                                        key))
            for qa in paragraph["qas"]:
                answers = () if qa.get("is_impossible") else _unique(
                    a["text"] for a in qa["answers"])
                cases.append(Case(key, Question(qa["question"].strip(), answers, lang,
                                                doc_id)))
    return paragraphs, cases


def demo_cases() -> list[Case]:
    cases = []
    qa = yaml.safe_load((DEMO_PROJECT / "eval" / "kb_qa.yml").read_text("utf-8"))
    for item in qa["questions"]:
        expected = item["expected"]
        cases.append(Case(expected[0], Question(
            item["q"], tuple(item.get("answer_contains") or ()), item["lang"],
            expected[0] if len(expected) == 1 else None)))
    return cases


def write_kb(paragraphs: list[Paragraph], folder: Path) -> None:
    folder.mkdir(parents=True)
    for p in paragraphs:
        front = yaml.safe_dump({"id": p.id, "title": p.title, "lang": p.lang},
                               allow_unicode=True)
        (folder / f"{p.id}.md").write_text(f"---\n{front}---\n\n{p.text}\n", encoding="utf-8")


def tune_articles(articles: set[str]) -> set[str]:
    ranked = sorted(articles, key=lambda a: hashlib.sha256(a.encode()).hexdigest())
    return set(ranked[:round(len(ranked) * TUNE_SHARE)])


def chosen(cases: list[Case], split: str, sample: int | None) -> list[Question]:
    tune = tune_articles({c.article for c in cases})
    kept = [c.question for c in cases
            if split == "all" or (c.article in tune) == (split == "tune")]
    if sample is not None and sample < len(kept):
        kept = random.Random(SEED).sample(kept, sample)
    return kept


async def run(dataset: str, split: str, sample: int | None) -> Report:
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        if dataset == "demo":
            kb, cases = DEMO_PROJECT / "kb", demo_cases()
        else:
            paragraphs, cases = (squad_like(SQUAD, prefix="sq", lang="en") if dataset == "squad"
                                 else squad_like(CMRC, prefix="cm", lang="zh"))
            kb = Path(tmp) / "kb"
            write_kb(paragraphs, kb)
        questions = chosen(cases, split, sample)
        with staged_progress() as step:
            return await evaluate([kb], questions, settings=get_settings(), progress=step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["squad", "cmrc", "demo"], required=True)
    parser.add_argument("--split", choices=["tune", "report", "all"], default="report")
    parser.add_argument("--sample", type=int, help="ask a random sample of N questions")
    parser.add_argument("--report", type=Path, help="write the figures here (JSON), and each "
                        "question's result beside it")
    args = parser.parse_args()
    report = asyncio.run(run(args.dataset, args.split, args.sample))
    about = {"dataset": args.dataset, "split": args.split, "sample": args.sample, "seed": SEED}
    console.print_json(json.dumps({**about, **report.figures()}, ensure_ascii=False))
    if args.report:
        report.write(args.report, about)


if __name__ == "__main__":
    main()
