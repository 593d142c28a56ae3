"""Fine-tune Parley's NLU on a public benchmark and evaluate it on the test split.

    python bench/nlu_benchmark.py --dataset banking77 --preset full --out var/bench-nlu

An ensemble can be trained one member per process (``--members 2 --train-member 0`` and
``--members 2 --train-member 1`` at once), then exported and evaluated by the same command
without ``--train-member``.

Trains with the same code as ``parley nlu train`` (nlu.finetune.fit), evaluates the served
ONNX model with nlu.evaluate, prints the figures and writes ``<out>/<dataset>.json`` with a
confusion matrix PNG beside it. Data is read from ../shared/datasets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nlu_datasets import LOADERS

from nlu.evaluate import evaluate, write_report
from nlu.finetune import PRESETS, fit, fit_members, with_overrides
from nlu.runtime import OnnxJointModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(LOADERS), required=True)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--layers", type=int)
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument("--no-quantize", action="store_true", help="serve the float model")
    parser.add_argument("--unfreeze", action="store_true", help="train the word embeddings too")
    parser.add_argument("--members", type=int, help="an ensemble of N seeds, served as one graph")
    parser.add_argument("--train-member", type=int, action="append",
                        help="train only this member of the ensemble and stop (run one process "
                             "per member, then once without it to export and evaluate)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--limit", type=int, help="smoke test: use only N examples per split")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="evaluate the model a previous run left in <out>/work-<name>")
    parser.add_argument("--tag", default="", help="suffix for the report name")
    parser.add_argument("--out", type=Path, default=Path("var/bench-nlu"))
    parser.add_argument("--cache", type=Path, default=Path("models/base"))
    args = parser.parse_args()

    config = with_overrides(PRESETS[args.preset], epochs=args.epochs, learning_rate=args.lr,
                            batch_size=args.batch_size, layers=args.layers,
                            label_smoothing=args.label_smoothing, threads=args.threads or None,
                            members=args.members, seed=args.seed)
    if args.unfreeze:
        config = with_overrides(config, freeze_word_embeddings=False)
    if args.no_quantize:
        config = with_overrides(config, quantize=False)
    train, val, test = LOADERS[args.dataset]()
    if args.limit:
        train, val, test = (split[::max(1, len(split) // args.limit)][:args.limit]
                            for split in (train, val, test))
    name = args.dataset + (f"-{args.tag}" if args.tag else "")
    workdir = args.out / f"work-{name}"
    started = time.perf_counter()
    def progress(phase: str, done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            elapsed = time.perf_counter() - started
            print(f"{name}: {phase} {done}/{total} {elapsed:.0f}s", file=sys.stderr, flush=True)

    report_path = args.out / f"{name}.json"
    if args.train_member is not None:
        fit_members(train, config, args.train_member, cache=args.cache, workdir=workdir,
                    progress=progress)
        return
    if args.evaluate_only:
        directory = workdir / "export"
        previous = json.loads(report_path.read_text()) if report_path.exists() else {}
        train_s = previous.get("train_seconds")
        config_shown = previous.get("config", vars(config))
    else:
        result = fit(train, val, config, cache=args.cache, workdir=workdir, progress=progress)
        directory = result.directory
        train_s = round(time.perf_counter() - started, 1)
        config_shown = vars(config)
    model = OnnxJointModel(directory, threads=None)
    report = evaluate(model, test)
    report.update({
        "dataset": args.dataset, "train_examples": len(train), "val_examples": len(val),
        "config": config_shown,
        "train_seconds": train_s, "threshold": model.threshold,
        "temperature": model.temperature, "serving": model.serving,
        "model_mb": round((directory / "model.onnx").stat().st_size / 2**20, 1),
    })
    write_report(report, report_path)
    shown = {k: report[k] for k in ("accuracy", "top1_accuracy", "in_scope_accuracy", "macro_f1",
                                    "oos_precision", "oos_recall", "entity_f1", "train_seconds",
                                    "model_mb")}
    print(json.dumps({"dataset": name, **shown, "serving": model.serving}))


if __name__ == "__main__":
    main()
