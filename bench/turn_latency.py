"""Turn latency of the real stack (NLU service + action server + Rasa 3.6 + API).

Starts its own stack in a temporary folder (models trained from the demo data), then
measures the time for ``POST /api/v1/conversations/{id}/messages`` to return the reply:
200 sequential turns in one conversation-at-a-time, and 200 turns spread over 20 concurrent
conversations. Prints p50/p95/p99 and throughput.

    .venv/bin/python bench/turn_latency.py [--turns 200] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.stack import running_stack

SCRIPT = ["hello", "where is my order?", "PL-204817", "can I return an opened blender?",
          "你好", "我的订单到哪了", "PL-310552", "thanks", "bye",
          "what payment methods do you take"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def conversation(client: httpx.AsyncClient, turns: int, latencies: list[float]) -> None:
    created = (await client.post("/api/v1/conversations", json={"locale": "en"})).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    for i in range(turns):
        started = time.perf_counter()
        response = await client.post(f"/api/v1/conversations/{created['id']}/messages",
                                     headers=headers,
                                     json={"text": SCRIPT[i % len(SCRIPT)],
                                           "client_message_id": uuid.uuid4().hex})
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()


async def measure(base_url: str, turns: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        per = [turns // concurrency + (1 if i < turns % concurrency else 0)
               for i in range(concurrency)]
        started = time.perf_counter()
        await asyncio.gather(*(conversation(client, n, latencies) for n in per))
        return latencies, time.perf_counter() - started


def report(label: str, latencies: list[float], wall: float) -> None:
    ms = [v * 1000 for v in latencies]
    print(f"{label:<34} n={len(ms):<4} p50={percentile(ms, .5):7.1f} ms  "
          f"p95={percentile(ms, .95):7.1f} ms  p99={percentile(ms, .99):7.1f} ms  "
          f"mean={statistics.mean(ms):7.1f} ms  throughput={len(ms) / wall:6.1f} turns/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp)) as stack:
        asyncio.run(measure(stack.api_url, 20, 1))  # warm-up
        report("sequential (1 conversation)", *asyncio.run(measure(stack.api_url, args.turns, 1)))
        report(f"{args.concurrency} concurrent conversations",
               *asyncio.run(measure(stack.api_url, args.turns, args.concurrency)))


if __name__ == "__main__":
    main()
