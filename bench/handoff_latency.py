"""Time from a hand-off trigger to the chat appearing in the agents' consoles.

Starts the real stack, logs in 20 agents with open console streams, opens 200 conversations
(each greeted once), then in each of them the customer asks for a person. For every trigger
it records the time from sending the customer's message to the moment every one of the 20
consoles has received the ``queued`` event (the slowest console counts). Triggers are sent
with 20 customers at a time.

    .venv/bin/python bench/handoff_latency.py [--agents 20] [--conversations 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.turn_latency import percentile
from staff.bootstrap import create_agent
from staff.schemas import AgentCreate
from tests.stack import running_stack


async def run(api: str, settings, agents: int, conversations: int) -> None:  # type: ignore[no-untyped-def]
    tokens = []
    async with httpx.AsyncClient(base_url=api, timeout=120) as client:
        for i in range(agents):
            email = f"bench{i}@example.com"
            await asyncio.to_thread(create_agent, settings, AgentCreate(
                email=email, name=f"Bench {i}", password="bench-password"))
            token = (await client.post("/api/v1/auth/login", json={
                "email": email, "password": "bench-password"})).json()["token"]
            tokens.append(token)
        seen: dict[str, list[float]] = {}
        ready = asyncio.Event()
        connected = 0

        async def console(token: str) -> None:
            nonlocal connected
            url = api.replace("http", "ws") + f"/api/v1/agent/stream?token={token}"
            async with websockets.connect(url, max_queue=None) as ws:
                await ws.recv()  # hello
                connected += 1
                if connected == agents:
                    ready.set()
                async for raw in ws:
                    event = json.loads(raw)
                    if event.get("type") == "state" and event.get("state") == "queued":
                        seen.setdefault(event["conversation_id"], []).append(time.perf_counter())

        consoles = [asyncio.create_task(console(t)) for t in tokens]
        await asyncio.wait_for(ready.wait(), 60)

        async def open_conversation() -> tuple[str, dict[str, str]]:
            created = (await client.post("/api/v1/conversations", json={"locale": "en"})).json()
            headers = {"Authorization": f"Bearer {created['token']}"}
            await client.post(f"/api/v1/conversations/{created['id']}/messages", headers=headers,
                              json={"text": "hello", "client_message_id": uuid.uuid4().hex})
            return created["id"], headers

        opened = []
        for start in range(0, conversations, 20):
            opened += await asyncio.gather(*(open_conversation()
                                             for _ in range(min(20, conversations - start))))
        sent: dict[str, float] = {}

        async def trigger(conversation_id: str, headers: dict[str, str]) -> None:
            sent[conversation_id] = time.perf_counter()
            response = await client.post(
                f"/api/v1/conversations/{conversation_id}/messages", headers=headers,
                json={"text": "I want to talk to a human", "client_message_id": uuid.uuid4().hex})
            assert response.json()["state"] == "queued", response.text

        for start in range(0, len(opened), 20):
            await asyncio.gather(*(trigger(cid, h) for cid, h in opened[start:start + 20]))
        deadline = time.monotonic() + 30
        while (sum(len(v) == agents for v in seen.values()) < len(opened)  # noqa: ASYNC110
               and time.monotonic() < deadline):
            await asyncio.sleep(0.1)
        for task in consoles:
            task.cancel()
    latencies = [(max(seen[cid]) - sent[cid]) * 1000 for cid in sent
                 if len(seen.get(cid, [])) == agents]
    print(f"agents={agents} open conversations={len(opened)} hand-offs delivered to every "
          f"console: {len(latencies)}/{len(sent)}")
    print(f"trigger -> visible in all {agents} consoles: p50={percentile(latencies, .5):.0f} ms "
          f"p95={percentile(latencies, .95):.0f} ms max={max(latencies):.0f} ms "
          "(includes the Rasa turn that recognises the request)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--conversations", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp)) as stack:
        asyncio.run(run(stack.api_url, stack.settings, args.agents, args.conversations))


if __name__ == "__main__":
    main()
