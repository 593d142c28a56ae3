"""The NLU service over HTTP: concurrent parse requests, with and without micro-batching.

    python bench/nlu_service.py [--requests 400] [--concurrency 1 16]

Starts the real NLU app (uvicorn, one worker) on a free port with the project's active model
(PARLEY_PROJECT, default the demo), sends BANKING77 utterances and the project's training
utterances from concurrent clients, and reports requests/s, latency and how many model calls
served them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nlu_datasets import banking77

from core.config import Settings
from nlu.app import create_nlu_app
from nlu.data import load_examples
from nlu.train import training_data
from tests.stack import free_port


async def load(url: str, texts: list[str], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    queue = list(texts)

    async def client(http: httpx.AsyncClient) -> None:
        while queue:
            text = queue.pop()
            started = time.perf_counter()
            response = await http.post(f"{url}/model/parse", json={"text": text})
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"requests_per_s": round(len(texts) / elapsed, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    port = free_port()
    settings = Settings(nlu_port=port)
    texts = [e.text for e in banking77()[2]][:args.requests // 2]
    texts += [e.text for e in load_examples(training_data(settings))][:args.requests - len(texts)]
    app = create_nlu_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    while not server.started:
        time.sleep(0.05)
    asyncio.run(load(url, texts[:50], 4))  # warm-up
    batcher = app.state.nlu.batcher
    for concurrency in args.concurrency:
        before = batcher.batches
        figures = asyncio.run(load(url, texts, concurrency))
        calls = batcher.batches - before
        print(json.dumps({"concurrency": concurrency, **figures, "model_calls": calls,
                          "mean_batch": round(len(texts) / calls, 1)}))
    server.should_exit = True
    thread.join(timeout=10)


if __name__ == "__main__":
    main()
