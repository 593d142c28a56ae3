"""Two API processes behind no sticky load balancer: live streams through Redis pub/sub, turns
of one conversation one at a time through PostgreSQL advisory locks.

Each process is the real app (``tests/scale_api.py``) with a slow scripted dialogue instead of
Rasa, on its own port, sharing one PostgreSQL database and one Redis (under a prefix of this
test's own). Without PostgreSQL or Redis on 127.0.0.1 the tests are skipped, or fail under CI.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from core.config import ROOT, Settings
from tests.servers import REDIS_URL, require_redis, scratch_database, wait_healthy
from tests.stack import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PASSWORD = "correct horse battery"
DELAY_S = 0.3  # each scripted turn


@dataclass
class Pair:
    a: str  # http://127.0.0.1:port of process A
    b: str
    record: Path  # one JSON line per turn, from both processes

    def turns(self, conversation_id: str) -> list[dict[str, Any]]:
        lines = self.record.read_text().splitlines() if self.record.exists() else []
        return [t for t in map(json.loads, lines) if t["conversation"] == conversation_id]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with scratch_database("parley_scale") as url:
        yield url


@pytest.fixture(scope="module")
def pair(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    require_redis()
    root = tmp_path_factory.mktemp("scale-out")
    env = {"PARLEY_ENVIRONMENT": "test", "PARLEY_VAR_DIR": str(root / "var"),
           "PARLEY_MODELS_DIR": str(root / "models"), "PARLEY_DATABASE_URL": postgres_url,
           "PARLEY_STREAM_URL": REDIS_URL, "PARLEY_REDIS_PREFIX": f"scale-{uuid.uuid4().hex}",
           "PARLEY_SECRET_KEY": secrets.token_urlsafe(32),
           "PARLEY_RASA_TOKEN": secrets.token_urlsafe(32), "PARLEY_CPU_LLM": "never",
           "PARLEY_RASA_URL": f"http://127.0.0.1:{free_port()}",
           "PARLEY_NLU_PORT": str(free_port()), "PARLEY_ACTION_PORT": str(free_port()),
           "PARLEY_RATE_CONVERSATIONS_PER_MINUTE": "1000000",
           "PARLEY_RATE_CONVERSATIONS_BURST": "1000000",
           "PARLEY_RATE_MESSAGES_PER_MINUTE": "1000000", "PARLEY_RATE_MESSAGES_BURST": "1000000"}
    settings = Settings(**{k.removeprefix("PARLEY_").lower(): v  # type: ignore[arg-type]
                           for k, v in env.items()})
    _make_agent(settings)  # migrates the database once, before both processes start
    record = root / "turns.jsonl"
    processes: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for name in ("a", "b"):
            port = free_port()
            log = (root / f"api-{name}.log").open("wb")
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "tests.scale_api", "--port", str(port), "--record",
                 str(record), "--delay", str(DELAY_S)],
                cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))
            urls.append(f"http://127.0.0.1:{port}")
        for url, process, name in zip(urls, processes, "ab", strict=True):
            log_path = root / f"api-{name}.log"
            wait_healthy(url, process, timeout_s=90, interval_s=0.2, what=f"API process {name}",
                         log_tail=lambda path=log_path: path.read_text()[-3000:])
        yield Pair(urls[0], urls[1], record)
    finally:
        for process in processes:
            with _suppress_lookup():
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                with _suppress_lookup():
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _make_agent(settings: Settings) -> None:
    from staff.bootstrap import create_agent
    from staff.schemas import AgentCreate

    create_agent(settings, AgentCreate(email="ana@example.com", name="Ana", password=PASSWORD,
                                       role="agent", languages=["en"]))  # type: ignore[arg-type]


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, *_: object) -> bool:
        return kind is ProcessLookupError


async def expect(ws: Any, matches: Callable[[dict[str, Any]], bool], *,
                 timeout_s: float = 10.0, resend: Callable[[], Any] | None = None
                 ) -> dict[str, Any]:
    """The first event on ``ws`` that ``matches``; ``resend`` is awaited every 0.3 s until
    then (to learn when a freshly opened socket's subscription is live)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if resend is not None:
            await resend()
        try:
            event = json.loads(await asyncio.wait_for(ws.recv(), 0.3 if resend else 1.0))
        except TimeoutError:
            continue
        if matches(event):
            return event
    raise AssertionError("the expected live event never arrived")


def ws_url(http_url: str, path: str) -> str:
    return http_url.replace("http://", "ws://") + path


async def test_customer_on_one_process_and_agent_on_another_see_each_other_live(
        pair: Pair) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        conv = (await http.post(f"{pair.a}/api/v1/conversations", json={"locale": "en"})).json()
        cid, customer_auth = conv["id"], {"Authorization": f"Bearer {conv['token']}"}
        login = await http.post(f"{pair.b}/api/v1/auth/login",
                                json={"email": "ana@example.com", "password": PASSWORD})
        agent_token = login.json()["token"]
        agent_auth = {"Authorization": f"Bearer {agent_token}"}
        assert (await http.put(f"{pair.b}/api/v1/agent/presence", headers=agent_auth,
                               json={"presence": "online"})).status_code == 200

        async def say(base: str, text: str, client_id: str) -> dict[str, Any]:
            response = await http.post(f"{base}/api/v1/conversations/{cid}/messages",
                                       headers=customer_auth,
                                       json={"text": text, "client_message_id": client_id})
            assert response.status_code == 200, response.text
            return dict(response.json())

        async with websockets.connect(ws_url(pair.a, f"/api/v1/conversations/{cid}/stream"
                                                     f"?token={conv['token']}")) as customer, \
                websockets.connect(ws_url(pair.b, f"/api/v1/agent/stream?token={agent_token}")
                                   ) as agent:
            # Both sockets are subscribed once they say hello.
            assert json.loads(await customer.recv()) == {"type": "hello", "conversation_id": cid}
            assert json.loads(await agent.recv())["type"] == "hello"

            # Hand-off: asked on A, the queue on B hears it.
            assert (await say(pair.a, "a human please", "m1"))["state"] == "queued"
            await expect(customer, lambda e: e == {"type": "state", "state": "queued",
                                                   "reason": "customer_request"})
            await expect(agent, lambda e: e["type"] == "state" and e["state"] == "queued"
                         and e["conversation_id"] == cid)

            # Claimed on B: the customer on A sees the agent arrive.
            claimed = await http.post(f"{pair.b}/api/v1/agent/conversations/{cid}/claim",
                                      headers=agent_auth)
            assert claimed.status_code == 200, claimed.text
            await expect(customer, lambda e: e["type"] == "state" and e["state"] == "with_agent")

            # Typing crosses processes both ways: A → B, then B → A (a console hears a chat's
            # typing once its agent may read the chat: here, once claimed).
            await expect(agent, lambda e: e["type"] == "typing" and e["role"] == "customer"
                         and e["conversation_id"] == cid,
                         resend=lambda: customer.send(json.dumps({"type": "typing"})))
            await expect(customer, lambda e: e["type"] == "typing" and e["role"] == "agent",
                         resend=lambda: agent.send(json.dumps({"type": "typing",
                                                               "conversation_id": cid})))

            # The live exchange, each side on its own process.
            await say(pair.a, "my parcel is late", "m2")
            got = await expect(agent, lambda e: e["type"] == "message"
                               and e["conversation_id"] == cid
                               and e["message"]["role"] == "customer")
            assert got["message"]["text"] == "my parcel is late"
            sent = await http.post(f"{pair.b}/api/v1/agent/conversations/{cid}/messages",
                                   headers=agent_auth, json={"text": "Let me check."})
            assert sent.status_code == 201, sent.text
            got = await expect(customer, lambda e: e["type"] == "message"
                               and e["message"]["role"] == "agent")
            assert got["message"]["text"] == "Let me check."

            # Hand-back on B (under the cross-process turn lock); the bot answers again.
            back = await http.post(f"{pair.b}/api/v1/agent/conversations/{cid}/handback",
                                   headers=agent_auth, json={"slots": {"order_id": "PL-1"}})
            assert back.status_code == 200 and back.json()["state"] == "bot", back.text
            await expect(customer, lambda e: e["type"] == "state" and e["state"] == "bot")
            turn = await say(pair.b, "thanks", "m3")  # no stickiness: any process will do
            assert [m["role"] for m in turn["messages"]] == ["customer", "bot"]
            got = await expect(customer, lambda e: e["type"] == "message"
                               and e["message"]["role"] == "bot")
            assert got["message"]["text"] == "echo: thanks"


async def test_turns_of_one_conversation_never_overlap_across_processes(pair: Pair) -> None:
    async with httpx.AsyncClient(timeout=120) as http:
        conv = (await http.post(f"{pair.a}/api/v1/conversations", json={"locale": "en"})).json()
        cid, auth = conv["id"], {"Authorization": f"Bearer {conv['token']}"}

        async def say(base: str, n: int) -> dict[str, Any]:
            response = await http.post(f"{base}/api/v1/conversations/{cid}/messages",
                                       headers=auth,
                                       json={"text": f"question {n}", "client_message_id": f"q{n}"})
            assert response.status_code == 200, response.text
            return dict(response.json())

        # Eight messages at once, half to each process; q0 and q1 also sent to the other
        # process at the same moment (a client retrying through another replica).
        sends = [say(pair.a if n % 2 else pair.b, n) for n in range(8)]
        sends += [say(pair.a, 0), say(pair.b, 1)]
        started = time.monotonic()
        turns = await asyncio.gather(*sends)
        took = time.monotonic() - started

        for n, turn in [*enumerate(turns[:8]), (0, turns[8]), (1, turns[9])]:
            assert [(m["role"], m["text"]) for m in turn["messages"]] == [
                ("customer", f"question {n}"), ("bot", f"echo: question {n}")]
        transcript = (await http.get(f"{pair.b}/api/v1/conversations/{cid}/messages",
                                     headers=auth)).json()["messages"]
        bot = sorted(m["text"] for m in transcript if m["role"] == "bot")
        assert bot == sorted(f"echo: question {n}" for n in range(8))  # one reply each

    recorded = sorted(pair.turns(cid), key=lambda t: t["start"])
    assert sorted(t["text"] for t in recorded) == sorted(f"question {n}" for n in range(8))
    assert len({t["pid"] for t in recorded}) == 2  # both processes ran turns
    overlaps = [(x["text"], y["text"]) for x, y in itertools.pairwise(recorded)
                if y["start"] < x["end"]]
    assert not overlaps
    assert took >= 8 * DELAY_S
