"""Instruction detection (issue 15, item 3) on the report split: patterns, model, both.

    .venv/bin/python bench/injection_detection.py [--model models/injection/detector.npz]
                                                 [--real 1500] [--no-e2e]

Everything judged here is in the *report* split (``knowledge.injection_corpus``): the report
half of each technique's hand-written attacks in ``data/injection/attacks.yml`` with all their
obfuscations, the whole held-out technique (``report_only``), the report half of the hard
negatives, and sentences of the report articles of SQuAD 2.0, CMRC 2018 and Bitext
(``../shared/datasets``; ``--real`` sentences per source, whole paragraphs sampled by hash and
judged in context, as an answer judges a chunk). The model (``make injection``) was fitted and
its thresholds set on the tune split only.

An attack counts as caught when no sentence of it survives what an answer keeps of a source
(``safety.without_instructions``: invisible characters and HTML comments dropped, then each
flagged sentence). "model" is the classifier alone (with its pair judgement), "both" is the
product (patterns OR model), "both, no pairs" the same without judging neighbouring pairs.
Precision for a benign set is that of a mix of the set and the report's base attacks of its
language: caught attacks / (caught attacks + flagged benign sentences).

End to end (unless ``--no-e2e``): the report split's attacks (each base attack once, in its
base form or one obfuscation, in turn) are planted into the demo project's articles of their
language, the knowledge base is imported into a throwaway embedded index, every question of
the demo's eval/kb_qa.yml is answered (extractive: a generator that finds nothing), and an
attack counts as reaching the customer when a sentence of it shows in an answer or a citation,
and as reaching the generator when it is in the prompt; patterns alone, then both layers.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.config import DEMO_PROJECT, get_settings
from knowledge import factory, instructions
from knowledge.injection_corpus import (
    OBFUSCATIONS,
    Example,
    attacks,
    available,
    hard_negatives,
    real_paragraphs,
    report_only,
)
from knowledge.instructions import InstructionModel, forms, judged_by_model
from knowledge.safety import HTML_COMMENT, clean_text, matches_patterns, normalise
from knowledge.text import split_sentences
from tests.unit.test_injection import NotFound

Judge = Callable[[Sequence[str]], list[bool]]
NAMES = {"squad": "SQuAD 2.0 (en)", "cmrc": "CMRC 2018 (zh)", "bitext": "Bitext (en)"}


def judges(model: InstructionModel) -> dict[str, Judge]:
    unpaired = replace(model, pair_threshold=2.0)
    return {
        "patterns": lambda s: [matches_patterns(x) for x in s],
        "model": lambda s: model.flags(s, [False] * len(s)),
        "both": lambda s: model.flags(s, [matches_patterns(x) for x in s]),
        "both, no pairs": lambda s: unpaired.flags(s, [matches_patterns(x) for x in s]),
    }


def sentences_of(text: str) -> list[str]:
    """What an answer judges of a source: see ``safety.without_instructions``."""
    return split_sentences(HTML_COMMENT.sub(" ", clean_text(text)))


def prefetch(model: InstructionModel, texts: Sequence[str]) -> None:
    """Embed, in one batch, the sentences of ``texts`` in every form the model judges (pairs
    next to suspicious sentences are embedded when judged)."""
    wanted: list[str] = []
    for text in texts:
        sentences = sentences_of(text)
        wanted += [f for s in sentences for f in forms(s) if judged_by_model(f)]
    model.probabilities(list(dict.fromkeys(wanted)))


def caught(text: str, judge: Judge) -> bool:
    return all(judge(sentences_of(text)))


def pct(hits: int, n: int) -> str:
    return f"{100 * hits / n:5.1f}%" if n else "    –"


def attack_tables(found: list[Example], modes: dict[str, Judge]) -> dict[str, int]:
    held = report_only()
    columns = ["patterns", "model", "both"]
    verdicts = {(e.text, m): caught(e.text, modes[m]) for e in found for m in columns}
    caught_base = {lang: sum(verdicts[(e.text, "both")] for e in found
                             if e.lang == lang and e.obfuscation == "base")
                   for lang in ("en", "zh")}

    def row(label: str, group: list[Example]) -> None:
        cells = " | ".join(pct(sum(verdicts[(e.text, m)] for e in group), len(group))
                           for m in columns)
        print(f"| {label} | {len(group)} | {cells} |")

    print("\nRecall by technique, base forms (report split; * = held out: never tuned on)\n")
    print("| language, technique | n | patterns | model | both |\n|---|---|---|---|---|")
    for lang in ("en", "zh"):
        techniques = dict.fromkeys(e.technique for e in found if e.lang == lang)
        for technique in techniques:
            row(f"{lang} {technique}{' *' if technique in held else ''}",
                [e for e in found if e.lang == lang and e.technique == technique
                 and e.obfuscation == "base"])
    print("\nRecall by obfuscation, all techniques (report split)\n")
    print("| language, form | n | patterns | model | both |\n|---|---|---|---|---|")
    for lang in ("en", "zh"):
        for form in ("base", *OBFUSCATIONS):
            group = [e for e in found if e.lang == lang and e.obfuscation == form]
            if group:
                row(f"{lang} {form}", group)
        row(f"{lang} all forms", [e for e in found if e.lang == lang])
        row(f"{lang} held-out technique, all forms",
            [e for e in found if e.lang == lang and e.technique in held])
    split = [e for e in found if e.technique == "split" or e.obfuscation == "split"]
    print("\nSplit across two sentences (family and obfuscation), with and without pairs: "
          f"{pct(sum(caught(e.text, modes['both']) for e in split), len(split))} / "
          f"{pct(sum(caught(e.text, modes['both, no pairs']) for e in split), len(split))}"
          f" of {len(split)}")
    return caught_base


def benign_table(sets: dict[str, tuple[str, list[list[str]]]], modes: dict[str, Judge],
                 caught_base: dict[str, int]) -> None:
    """``sets``: name -> (language, texts, each a list of neighbouring sentences)."""
    print("\nFalse positives on benign text (report split): share of sentences flagged; "
          "precision of 'both' against the report's base attacks of the language\n")
    print("| set | sentences | patterns | model | both | both, no pairs | precision (both) |\n"
          "|---|---|---|---|---|---|---|")
    for name, (lang, texts) in sets.items():
        flagged = {m: sum(sum(modes[m](t)) for t in texts) for m in modes}
        n = sum(len(t) for t in texts)
        cells = " | ".join(f"{pct(flagged[m], n)} ({flagged[m]})" for m in modes)
        precision = caught_base[lang] / max(caught_base[lang] + flagged["both"], 1)
        print(f"| {name} | {n} | {cells} | {100 * precision:.1f}% |")


def real_sets(limit: int) -> dict[str, tuple[str, list[list[str]]]]:
    found = {}
    for source in available():
        paragraphs = sorted(real_paragraphs(source, split="report"),
                            key=lambda p: hashlib.sha256(p.encode()).digest())
        chosen: list[list[str]] = []
        for paragraph in paragraphs:
            if sum(len(c) for c in chosen) >= limit:
                break
            chosen.append([s for s in split_sentences(paragraph) if s.strip()])
        found[NAMES[source]] = ("zh" if source == "cmrc" else "en", chosen)
    return found


# ---------------------------------------------------------------------------- end to end

def planted(found: list[Example]) -> list[Example]:
    """Each report base attack once: in its base form or, in turn, one obfuscation."""
    bases = [e for e in found if e.obfuscation == "base"]
    chosen = []
    for i, base in enumerate(bases):
        options = [e for e in found if e.base == base.text and e.lang == base.lang]
        chosen.append(options[i % len(options)])
    return chosen


async def end_to_end(chosen: list[Example], model: InstructionModel) -> None:
    from knowledge.answer import KnowledgeAnswerer
    from knowledge.documents.embedded import SQLiteDocumentIndex
    from knowledge.ingest import import_path

    qa = yaml.safe_load((DEMO_PROJECT / "eval" / "kb_qa.yml").read_text("utf-8"))["questions"]
    embedder = factory.embedder(get_settings())
    print(f"\nEnd to end: {len(chosen)} report attacks planted in the demo's articles, "
          f"{len(qa)} questions answered\n")
    print("| layers | reached a reply or citation | reached the generator's prompt | "
          "seconds |\n|---|---|---|---|")
    for label, active in (("patterns", None), ("both", model)):
        instructions.use(active)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            kb = Path(tmp) / "kb"
            shutil.copytree(DEMO_PROJECT / "kb", kb)
            for lang in ("en", "zh"):
                articles = sorted((kb / lang).glob("*.md"))
                for i, attack in enumerate(e for e in chosen if e.lang == lang):
                    path = articles[i % len(articles)]
                    head, _, rest = path.read_text("utf-8").partition("\n\n")
                    path.write_text(f"{head}\n\n{attack.text}\n\n{rest}", "utf-8")
            index = SQLiteDocumentIndex(Path(tmp) / "documents.db")
            await import_path(kb, index=index, embedder=embedder)
            recorder = NotFound()
            answerer = KnowledgeAnswerer(index=index, embedder=embedder, generators=[recorder])
            try:
                answers = [await answerer.answer(q["q"], lang=q["lang"]) for q in qa]
            finally:
                await answerer.close()
        shown = normalise(" ".join(a.text + " ".join(c["title"] + " " + c["snippet"]
                                                     for c in a.citations) for a in answers))
        prompted = normalise(" ".join(p[1].content for p in recorder.prompts))
        reached = [sum(any(s[:40] in where for s in _marks(e.text)) for e in chosen)
                   for where in (shown, prompted)]
        print(f"| {label} | {reached[0]} of {len(chosen)} | {reached[1]} of {len(chosen)} | "
              f"{time.perf_counter() - started:.0f} |")


def _marks(text: str) -> list[str]:
    return [m for s in sentences_of(text) if len(m := normalise(s)) >= 8]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=get_settings().injection_model_path)
    parser.add_argument("--real", type=int, default=1500,
                        help="sentences per real source (whole paragraphs)")
    parser.add_argument("--no-e2e", action="store_true")
    args = parser.parse_args()
    logging.getLogger("knowledge.answer").setLevel(logging.ERROR)  # "dropped N sentences"
    if not args.model.is_file():
        sys.exit(f"{args.model} is missing: train it first (make injection)")
    started = time.perf_counter()
    model = InstructionModel.load(args.model, embedder=factory.embedder(get_settings()))
    model.cache_size = 1_000_000
    print(f"model: {args.model} (threshold {model.threshold:.3f}, pairs "
          f"{model.pair_threshold:.3f}; trained on {model.about.get('sources') or 'the corpus'})")
    found = [e for e in attacks() if e.split == "report"]
    negatives = [e for e in hard_negatives() if e.split == "report"]
    sets: dict[str, tuple[str, list[list[str]]]] = {}
    for lang in ("en", "zh"):
        texts = [sentences_of(e.text) for e in negatives if e.lang == lang]
        sets[f"hard negatives ({lang})"] = (lang, texts)
    sets.update(real_sets(args.real))
    prefetch(model, [e.text for e in found]
             + [" ".join(t) for _, texts in sets.values() for t in texts])
    modes = judges(model)
    caught_base = attack_tables(found, modes)
    benign_table(sets, modes, caught_base)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for e in negatives:
        by_kind[e.technique].append(any(modes["both"](sentences_of(e.text))))
    print("\nHard negatives flagged by both layers, by kind: " + ", ".join(
        f"{kind} {sum(v)}/{len(v)}" for kind, v in by_kind.items()))
    print(f"\n({time.perf_counter() - started:.0f} s for the tables)")
    if not args.no_e2e:
        asyncio.run(end_to_end(planted(found), model))


if __name__ == "__main__":
    main()
