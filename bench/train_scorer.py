"""Train the answer scorer (knowledge/reader.py) on the *tune* splits of public QA data:

    .venv/bin/python bench/train_scorer.py [--datasets squad cmrc] [--out models/scorer/scorer.pkl]

Each dataset is imported whole as one open-domain knowledge base, as bench/answer_quality.py
does, and only the questions of its tune split (a third of the articles, by SHA-256) are asked:
the report split stays unseen for bench/answer_quality.py. The demo project's questions are not
used at all. The mined candidates are kept in models/scorer/mined-<dataset>.npz, so a second run
only fits (``--mine`` mines again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from answer_quality import CMRC, SQUAD, squad_like, tune_articles, write_kb

from core.cli import console, staged_progress
from core.config import get_settings
from knowledge.reader import MAX_DROP, Mined, fit, mine


def _cached(path: Path) -> Mined | None:
    if not path.is_file():
        return None
    data = np.load(path, allow_pickle=False)
    mined = Mined()
    mined.rows = [tuple(r) for r in data["rows"]]
    mined.labels = data["labels"].tolist()
    mined.groups = data["groups"].tolist()
    mined.answerable = data["answerable"].tolist()
    mined.keys = data["keys"].tolist()
    return mined


def _save(mined: Mined, path: Path) -> None:
    rows, labels, groups = mined.arrays()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, rows=rows, labels=labels, groups=groups,
                        answerable=np.asarray(mined.answerable),
                        keys=np.asarray(mined.keys))


async def _mine(dataset: str) -> Mined:
    paragraphs, cases = (squad_like(SQUAD, prefix="sq", lang="en") if dataset == "squad"
                         else squad_like(CMRC, prefix="cm", lang="zh"))
    tune = tune_articles({c.article for c in cases})
    asked = [c for c in cases if c.article in tune]
    with tempfile.TemporaryDirectory(prefix="parley-scorer-data-") as tmp:
        kb = Path(tmp) / "kb"
        write_kb(paragraphs, kb)
        with staged_progress() as step:
            return await mine([kb], [c.question for c in asked], settings=get_settings(),
                              keys=[f"{dataset}:{c.article}" for c in asked], progress=step)


def _merge(parts: list[Mined]) -> Mined:
    merged = Mined()
    for part in parts:
        offset = len(merged.answerable)
        merged.rows += part.rows
        merged.labels += part.labels
        merged.groups += [g + offset for g in part.groups]
        merged.answerable += part.answerable
        merged.keys += part.keys
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=["squad", "cmrc"],
                        default=["squad", "cmrc"])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--mine", action="store_true", help="mine again even when cached")
    parser.add_argument("--max-drop", type=float, default=MAX_DROP,
                        help="right answers the threshold may give up, in any language")
    args = parser.parse_args()
    settings = get_settings()
    out = args.out or settings.answer_scorer_path
    parts = []
    for dataset in args.datasets:
        cache = out.parent / f"mined-{dataset}.npz"
        mined = None if args.mine else _cached(cache)
        if mined is None:
            mined = asyncio.run(_mine(dataset))
            _save(mined, cache)
        parts.append(mined)
    scorer, figures = fit(_merge(parts), max_drop=args.max_drop)
    scorer.about["datasets"] = args.datasets
    scorer.about["split"] = "tune"
    scorer.save(out)
    console.print_json(json.dumps({"out": str(out), **figures, "datasets": args.datasets}))


if __name__ == "__main__":
    main()
