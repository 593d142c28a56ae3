"""Knowledge freshness: from publishing an edit in the knowledge-base editor to the bot
answering a customer with the new text.

Starts the real stack (NLU, actions, Rasa, API); an admin creates an article, then edits and
publishes it ``--edits`` times with a new number of days each time; after each publish a
customer asks through the public API (a fresh conversation per try, ~every 0.3 s) until the
bot's answer states the new number. ``--broker redis`` runs the same with the Celery queue on
Redis (a real ``parley worker`` process); the default is the embedded queue in the API.

    .venv/bin/python bench/freshness.py [--broker embedded|redis] [--edits 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.turn_latency import percentile
from staff.bootstrap import create_agent
from staff.schemas import AgentCreate
from tests.stack import running_stack

ARTICLE = "freshness-engraving"
QUESTION = "how much does lid engraving cost?"


def body(euros: int) -> str:
    return (f"## Lid engraving\n\nLid engraving costs EUR {euros} per kettle lid. "
            "Engraved lids cannot be returned.\n")


def ask(client: httpx.Client) -> str:
    created = client.post("/api/v1/conversations", json={"locale": "en"}).json()
    reply = client.post(f"/api/v1/conversations/{created['id']}/messages",
                        headers={"Authorization": f"Bearer {created['token']}"},
                        json={"text": QUESTION, "client_message_id": uuid.uuid4().hex}).json()
    return " ".join(m["text"] for m in reply["messages"][1:])


def run(api: str, settings, edits: int) -> list[float]:  # type: ignore[no-untyped-def]
    create_agent(settings, AgentCreate(email="fresh@example.com", name="Fresh",
                                       password="freshness-pw", role="admin"))
    with httpx.Client(base_url=api, timeout=60) as client:
        token = client.post("/api/v1/auth/login", json={"email": "fresh@example.com",
                                                        "password": "freshness-pw"}).json()["token"]
        admin = {"Authorization": f"Bearer {token}"}
        created = client.post("/api/v1/kb/articles", headers=admin, json={
            "id": ARTICLE, "title": "Lid engraving", "tags": ["engraving"], "lang": "en",
            "body": body(30)})
        created.raise_for_status()
        version = created.json()["version"]
        client.post(f"/api/v1/kb/articles/{ARTICLE}/publish", headers=admin,
                    json={"version": version}).raise_for_status()
        latencies = []
        for days in range(41, 41 + edits):
            edited = client.put(f"/api/v1/kb/articles/{ARTICLE}", headers=admin, json={
                "title": "Lid engraving", "tags": ["engraving"], "body": body(days),
                "version": version})
            edited.raise_for_status()
            version = edited.json()["version"]
            started = time.perf_counter()
            client.post(f"/api/v1/kb/articles/{ARTICLE}/publish", headers=admin,
                        json={"version": version}).raise_for_status()
            while f"EUR {days}" not in ask(client):
                if time.perf_counter() - started > 60:
                    raise TimeoutError(f"the bot never said EUR {days}")
                time.sleep(0.3)
            latencies.append(time.perf_counter() - started)
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", choices=["embedded", "redis"], default="embedded")
    parser.add_argument("--edits", type=int, default=10)
    args = parser.parse_args()
    extra = {}
    if args.broker == "redis":
        extra["PARLEY_BROKER_URL"] = f"redis://127.0.0.1:6379/{11}"
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp), extra) as stack:
        worker = None
        if args.broker == "redis":
            worker = subprocess.Popen([sys.executable, "-m", "web.cli", "worker"],
                                      env={**os.environ, **stack.env}, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(5)
        try:
            latencies = run(stack.api_url, stack.settings, args.edits)
        finally:
            if worker:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(30)
    ms = [v * 1000 for v in latencies]
    print(f"broker={args.broker} edits={len(ms)}: publish -> bot answers with the new text "
          f"p50={percentile(ms, .5):.0f} ms p95={percentile(ms, .95):.0f} ms "
          f"max={max(ms):.0f} ms (a bot turn takes ~0.5 s of that)")


if __name__ == "__main__":
    main()
