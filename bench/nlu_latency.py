"""Latency and throughput of the served NLU model (ONNX Runtime on the CPU).

    python bench/nlu_latency.py [--model DIR] [--threads 1] [--n 500]

Measures one utterance at a time (p50/p95 of the model call, and of the whole parse with
pattern entities and Rasa formatting), batched throughput, and the model's size on disk.
Utterances are BANKING77 test sentences (real customer lengths) and the project's training
data. The model is the project's (PARLEY_PROJECT, default the demo): <project>/.parley/models/nlu.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nlu_datasets import banking77

from core.config import Settings
from nlu.data import load_examples
from nlu.registry import Registry
from nlu.service import NLUService
from nlu.train import training_data


def percentiles(samples: list[float]) -> dict[str, float]:
    values = np.array(samples) * 1000
    return {"p50_ms": round(float(np.percentile(values, 50)), 2),
            "p95_ms": round(float(np.percentile(values, 95)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    settings = Settings()
    parser.add_argument("--model", type=Path, default=settings.nlu_model_dir)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()

    directory = args.model if (args.model / "metadata.json").exists() \
        else Registry(args.model).active_dir()
    service = NLUService(directory, threads=args.threads)
    service.warm_up()
    model = service.choose(None)
    texts = [e.text for e in banking77()[2]][:args.n // 2]
    texts += [e.text for e in load_examples(training_data(settings))][:args.n - len(texts)]
    for text in texts[:20]:
        service.parse(text)  # warm-up
    raw, full = [], []
    for text in texts:
        started = time.perf_counter()
        model.model.predict([text])
        raw.append(time.perf_counter() - started)
        started = time.perf_counter()
        service.parse(text)
        full.append(time.perf_counter() - started)
    throughput = {}
    for batch in (8, 32):
        started = time.perf_counter()
        for i in range(0, len(texts), batch):
            model.model.predict(texts[i:i + batch])
        throughput[f"batch_{batch}_per_s"] = round(len(texts) / (time.perf_counter() - started))
    tokens = [len(model.model.tokenizer.encode(t).ids) for t in texts]
    size = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    print(json.dumps({
        "version": model.version, "serving": model.metadata["serving"]["format"],
        "layers": model.metadata["config"]["layers"] or "all",
        "threads": args.threads, "utterances": len(texts),
        "tokens_mean": round(float(np.mean(tokens)), 1),
        "model_call": percentiles(raw), "parse": percentiles(full), **throughput,
        "model_mb": round(size / 2**20, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
