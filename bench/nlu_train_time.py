"""Training time against accuracy: `parley nlu train` on BANKING77, by data size and budget.

    python bench/nlu_train_time.py                                 # default preset, whole split
    python bench/nlu_train_time.py --fraction 0.25 --budget 18000  # other points of the trade-off

Each point trains with ``nlu.train.train``, what ``parley nlu train --data FILE`` runs (a 10%
validation hold-out of the given data, fine-tuning, ONNX export, int8, calibration, the
validation evaluation), into a temporary folder, and then evaluates the served model on the
BANKING77 test split, which no choice here is tuned on. ``--fraction`` trains on a stratified
share of the train split (written as a CSV into the temporary folder); ``--budget`` replaces
the preset's ``example_budget`` (0: no budget, all of the preset's epochs). Prints, per point,
the schedule, the wall time of each phase and in all, the CPU time, the load average, and the
validation and test accuracy. Data is read from ../shared/datasets (or ``PARLEY_DATASETS``);
nothing is written to the project.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nlu_datasets import datasets_dir

from nlu.data import Example, load_examples
from nlu.encoders import resolve_base
from nlu.evaluate import evaluate
from nlu.finetune import PRESETS, TrainConfig, split_validation, training_schedule, with_overrides
from nlu.runtime import OnnxJointModel
from nlu.train import train


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_csv(examples: list[Example], path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerows((e.text, e.intent) for e in examples)
    return path


def run_point(data: Path, config: TrainConfig, test: list[Example], *, base_cache: Path,
              folder: Path) -> dict[str, object]:
    examples = load_examples(data)
    fitted, _ = split_validation(examples, config.val_fraction, config.seed)
    schedule = training_schedule(config, len(fitted))
    phases: dict[str, float] = {}
    started, cpu_started, load_started = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]

    def progress(phase: str, done: int, total: int) -> None:
        phases.setdefault(phase, time.perf_counter() - started)
        if phase == "training" and done % 200 == 0:
            print(f"  training {done}/{total} {time.perf_counter() - started:.0f}s",
                  file=sys.stderr, flush=True)

    registry = folder / "models"
    version = train(data, registry, config=config, activate=False, reuse=False,
                    base_cache=base_cache, progress=progress)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    marks = [*phases.values(), wall]
    spans = {name: round(end - start) for name, start, end
             in zip(phases, marks, marks[1:], strict=False)}
    metadata = json.loads((registry / version / "metadata.json").read_text())
    report = evaluate(OnnxJointModel(registry / version, threads=None), test)
    return {
        "examples": len(examples), "trained_on": len(fitted), "epochs": schedule.epochs,
        "steps": schedule.steps, "example_passes": schedule.epochs * len(fitted),
        "example_budget": config.example_budget,
        "wall_min": round(wall / 60, 1), "phases_s": spans, "cpu_min": round(cpu / 60, 1),
        "load_1min": [round(load_started, 1), round(os.getloadavg()[0], 1)],
        "val_accuracy": round(metadata["metrics"]["accuracy"], 4),
        "test_accuracy": round(report["accuracy"], 4),
        "test_top1_accuracy": round(report["top1_accuracy"], 4),
        "serving": metadata["serving"]["format"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--fraction", type=float, nargs="+", default=[1.0],
                        help="shares of the train split to train on (stratified)")
    parser.add_argument("--budget", type=int, nargs="+", default=[None],
                        help="example budgets to try instead of the preset's (0: no budget)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the stratified shares")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    folder = datasets_dir() / "banking77"
    everything = load_examples(folder / "train.csv")
    test = load_examples(folder / "test.csv")
    print(f"{os.cpu_count()} CPUs; BANKING77: {len(everything)} train, {len(test)} test",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="parley-train-time-") as tmp:
        base_cache = Path(tmp) / "base"
        resolve_base(PRESETS[args.preset].base, base_cache)  # unpacked once, not timed
        for fraction in args.fraction:
            data = folder / "train.csv"
            if fraction < 1:
                share, _ = split_validation(everything, 1 - fraction, args.seed)
                data = write_csv(share, Path(tmp) / f"train-{fraction}.csv")
            for budget in args.budget:
                config = with_overrides(PRESETS[args.preset], threads=args.threads or None,
                                        example_budget=budget)
                with tempfile.TemporaryDirectory(dir=tmp) as work:
                    row = {"fraction": fraction, **run_point(
                        data, config, test, base_cache=base_cache, folder=Path(work))}
                print(json.dumps(row), flush=True)
                rows.append(row)
    print("\n| examples (trained on) | epochs | example passes | wall time | CPU time "
          "| validation acc. | test acc. (served) | test top-1 |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['examples']:,} ({row['trained_on']:,}) | {row['epochs']} "
              f"| {row['example_passes']:,} | {row['wall_min']} min | {row['cpu_min']} min "
              f"| {row['val_accuracy']:.1%} | {row['test_accuracy']:.2%} "
              f"| {row['test_top1_accuracy']:.2%} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
