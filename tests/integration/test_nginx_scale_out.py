"""Two of each Parley process behind Debian's nginx on loopback, as a real deployment runs them.

nginx (``tests/nginx.py``) balances, round robin and without sticky sessions, four pairs on
free ports: the API (the public port, WebSockets included), Rasa (the API's
``PARLEY_RASA_URL``), the NLU service (Rasa's ``PARLEY_NLU_URL``) and the action server (Rasa's
action endpoint). Every process shares one PostgreSQL database (the app, the turn lock, Rasa's
tracker store) and one Redis (the live stream, Rasa's lock store); the two Rasa processes share
one trained model, the two NLU services one model folder.

A customer and an agent, each on a socket through nginx that landed on a different API
process, see each other live through hand-off, the agent's reply and hand-back; then, while the
customer keeps talking through nginx (retrying a failed message with the same
``client_message_id``), one API process and one Rasa process are killed with SIGKILL mid-turn.
Afterwards every message is stored once, in order, with the reply it was given, and Rasa saw
each once. Without nginx, PostgreSQL or Redis on 127.0.0.1 the test is skipped (fails in CI).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import websockets

from core.config import Settings
from knowledge.sync import sync_all
from nlu.train import train_for_settings
from tests.integration.test_scale_out import expect, ws_url
from tests.nginx import require_nginx, running_nginx
from tests.servers import REDIS_URL, require_postgres, require_redis, scratch_database
from tests.stack import free_port, stack_env
from web import runner

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PASSWORD = "correct horse battery"
RASA_TIMEOUT_S = 10
KINDS = ("nlu", "actions", "rasa", "api")
# What the customer says while processes die: a rule, knowledge answers, a thank-you.
SCRIPT = ["hello", "what payment methods do you accept?", "how long does shipping take?",
          "thanks!"]


@dataclass
class Deployment:
    url: str  # nginx's public port: the API pair
    rasa_url: str  # nginx in front of the Rasa pair
    settings: Settings
    services: dict[str, list[runner.Service]]
    nginx_dir: Path

    def api_of(self, upstream: str) -> runner.Service:
        """The API process at ``upstream`` (``127.0.0.1:port``, nginx's ``X-Upstream``)."""
        port = int(upstream.rsplit(":", 1)[1])
        return next(s for s in self.services["api"] if s.health_url.split("/")[2].endswith(
            f":{port}"))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    require_nginx()
    require_redis()
    require_postgres()
    root = tmp_path_factory.mktemp("nginx-scale-out")
    lb = {kind: free_port() for kind in KINDS}
    own = {kind: [free_port(), free_port()] for kind in KINDS}
    with scratch_database("parley_nginx") as database, pytest.MonkeyPatch.context() as patch:
        env = {**stack_env(root),
               "PARLEY_DATABASE_URL": database, "PARLEY_STREAM_URL": REDIS_URL,
               "PARLEY_LOCK_STORE_URL": "redis://127.0.0.1:6379/1",
               "PARLEY_REDIS_PREFIX": f"nginx-{uuid.uuid4().hex}",
               "PARLEY_RATE_MESSAGES_PER_MINUTE": "1000000",
               "PARLEY_RATE_MESSAGES_BURST": "1000000",
               # The API's wait for Rasa, and so the life of a killed Rasa's lock ticket.
               "PARLEY_RASA_TIMEOUT_S": str(RASA_TIMEOUT_S),
               # Each process reaches the others through nginx, never directly.
               "PARLEY_PUBLIC_URL": f"http://127.0.0.1:{lb['api']}",
               "PARLEY_RASA_URL": f"http://127.0.0.1:{lb['rasa']}",
               "PARLEY_NLU_PORT": str(lb["nlu"]), "PARLEY_ACTION_PORT": str(lb["actions"]),
               "PYTHONUNBUFFERED": "1", "OMP_WAIT_POLICY": "PASSIVE"}
        for key, value in env.items():
            patch.setenv(key, value)
        settings = Settings()
        _make_agent(settings)  # migrates the database once, before any process starts
        train_for_settings(settings)  # one NLU model folder for both NLU services
        asyncio.run(sync_all(settings))
        model = runner.train_rasa(settings)  # one dialogue model for both Rasa processes
        services = _services(settings, model, root / "logs", own)
        upstreams = {kind: (lb[kind], [f"127.0.0.1:{p}" for p in own[kind]]) for kind in KINDS}
        with running_nginx(root / "nginx", upstreams) as nginx_dir:
            try:
                for service in itertools.chain(*services.values()):
                    service.start()  # all at once: the pairs load in parallel
                _wait_healthy(list(itertools.chain(*services.values())), timeout_s=300)
                yield Deployment(f"http://127.0.0.1:{lb['api']}",
                                 f"http://127.0.0.1:{lb['rasa']}", settings, services, nginx_dir)
            finally:
                for service in itertools.chain(*services.values()):
                    service.kill_group(signal.SIGTERM)
                for service in itertools.chain(*services.values()):
                    service.reap(10)


def _services(settings: Settings, model: Path, logs: Path,
              own: dict[str, list[int]]) -> dict[str, list[runner.Service]]:
    """Two processes of each kind, each on its own port; the others find it through nginx."""
    endpoints = runner.write_endpoints(settings)  # action endpoint: nginx's actions port
    python = sys.executable
    token = settings.rasa_token.get_secret_value()
    env = dict(os.environ)
    made: dict[str, list[runner.Service]] = {kind: [] for kind in KINDS}
    for n in range(2):
        nlu, actions, rasa, api = (own[kind][n] for kind in KINDS)
        made["nlu"].append(runner.Service(
            f"nlu-{n}", [python, "-m", "web.cli", "serve", "nlu"],
            f"http://127.0.0.1:{nlu}/healthz", {**env, "PARLEY_NLU_PORT": str(nlu)},
            log_path=logs / f"nlu-{n}.log"))
        made["actions"].append(runner.Service(
            f"actions-{n}", [python, "-m", "rasa_sdk", "--actions", "bot.actions", "-p",
                             str(actions), "--quiet"],
            f"http://127.0.0.1:{actions}/health", {**env, "SANIC_HOST": "127.0.0.1"},
            log_path=logs / f"actions-{n}.log"))
        made["rasa"].append(runner.Service(
            f"rasa-{n}", [str(runner.RASA_BIN), "run", "--model", str(model), "--endpoints",
                          str(endpoints), "--credentials", str(runner.BOT_DIR / "credentials.yml"),
                          "--enable-api", f"--auth-token={token}", "-i", "127.0.0.1", "-p",
                          str(rasa)],
            f"http://127.0.0.1:{rasa}/webhooks/parley/", runner.rasa_env(settings),
            log_path=logs / f"rasa-{n}.log"))
        made["api"].append(runner.Service(
            f"api-{n}", [python, "-m", "web.cli", "serve", "api"],
            f"http://127.0.0.1:{api}/healthz", {**env, "PARLEY_API_PORT": str(api)},
            log_path=logs / f"api-{n}.log"))
    return made


def _wait_healthy(services: list[runner.Service], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = list(services)
    while waiting:
        for service in list(waiting):
            if not service.alive():
                pytest.fail(f"{service.name} exited during start-up:\n{_tail(service)}")
            if service.healthy():
                waiting.remove(service)
        if waiting and time.monotonic() > deadline:
            pytest.fail(f"not healthy after {timeout_s:.0f} s: {[s.name for s in waiting]}\n"
                        + "\n".join(_tail(s) for s in waiting))
        time.sleep(0.3)


def _tail(service: runner.Service) -> str:
    assert service.log_path is not None
    text = service.log_path.read_text() if service.log_path.exists() else ""
    return f"--- {service.name}\n{text[-2500:]}"


def _make_agent(settings: Settings) -> None:
    from staff.bootstrap import create_agent
    from staff.schemas import AgentCreate

    create_agent(settings, AgentCreate(email="ana@example.com", name="Ana", password=PASSWORD,
                                       role="agent", languages=["en"]))  # type: ignore[arg-type]


@dataclass
class Customer:
    """One customer talking through nginx, who retries a failed message with the same id."""

    url: str
    id: str
    token: str
    sent: list[str] = field(default_factory=list)  # client message ids, in order
    accepted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id → turn
    retries: list[str] = field(default_factory=list)
    took: dict[str, float] = field(default_factory=dict)  # id → seconds until accepted

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def say(self, text: str, client_id: str | None = None) -> dict[str, Any]:
        client_id = client_id or uuid.uuid4().hex
        self.sent.append(client_id)
        started = time.monotonic()
        deadline = started + 120
        while True:
            try:
                response = httpx.post(f"{self.url}/api/v1/conversations/{self.id}/messages",
                                      headers=self.headers, timeout=90,
                                      json={"text": text, "client_message_id": client_id})
            except httpx.TransportError as exc:
                problem = type(exc).__name__
            else:
                if response.status_code == 200:
                    turn = dict(response.json())
                    self.accepted[client_id] = turn["messages"]
                    self.took[client_id] = time.monotonic() - started
                    return turn
                if response.status_code < 500 and response.status_code != 429:
                    raise AssertionError(f"{text!r}: {response.status_code} {response.text}")
                problem = f"{response.status_code} {' '.join(response.text.split())[:120]}"
            self.retries.append(f"{text!r}: {problem}")
            assert time.monotonic() < deadline, f"{text!r} still failing after 120 s: {problem}"
            time.sleep(0.5)

    def transcript(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/conversations/{self.id}/messages",
                             headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return list(response.json()["messages"])


def _upstream(ws: Any) -> str:
    return str(ws.response.headers["X-Upstream"])


async def _live_exchange(deployment: Deployment, customer: Customer,
                         agent_auth: dict[str, str], agent_token: str) -> str:
    """Hand-off, the agent's reply and hand-back, seen live across two API processes; the
    upstream of the customer's socket."""
    url = deployment.url
    stream = ws_url(url, f"/api/v1/conversations/{customer.id}/stream?token={customer.token}")
    async with websockets.connect(stream) as customer_ws:
        # Each socket is subscribed once it says hello: nothing published after it is missed.
        hello = json.loads(await asyncio.wait_for(customer_ws.recv(), 10))
        assert hello == {"type": "hello", "conversation_id": customer.id}, hello
        agents = ws_url(url, f"/api/v1/agent/stream?token={agent_token}")
        for _ in range(4):  # round robin: the next connection goes to the other process
            agent_ws = await websockets.connect(agents)
            if _upstream(agent_ws) != _upstream(customer_ws):
                break
            await agent_ws.close()
        else:
            raise AssertionError("nginx never sent the agent to the other API process")
        async with agent_ws:
            assert json.loads(await asyncio.wait_for(agent_ws.recv(), 10))["type"] == "hello"

            async with httpx.AsyncClient(base_url=url, headers=agent_auth, timeout=60) as http:
                turn = await asyncio.to_thread(customer.say, "I want to talk to a human")
                assert turn["state"] == "queued", turn
                await expect(customer_ws, lambda e: e["type"] == "state"
                             and e["state"] == "queued")
                await expect(agent_ws, lambda e: e["type"] == "state" and e["state"] == "queued"
                             and e["conversation_id"] == customer.id)

                claimed = await http.post(f"/api/v1/agent/conversations/{customer.id}/claim")
                assert claimed.status_code == 200, claimed.text
                await expect(customer_ws, lambda e: e["type"] == "state"
                             and e["state"] == "with_agent")
                await expect(agent_ws, lambda e: e["type"] == "typing"
                             and e["role"] == "customer" and e["conversation_id"] == customer.id,
                             resend=lambda: customer_ws.send(json.dumps({"type": "typing"})))

                turn = await asyncio.to_thread(customer.say, "my parcel is late")
                assert [m["role"] for m in turn["messages"]] == ["customer"]  # the bot waits
                got = await expect(agent_ws, lambda e: e["type"] == "message"
                                   and e["conversation_id"] == customer.id
                                   and e["message"]["role"] == "customer")
                assert got["message"]["text"] == "my parcel is late"
                sent = await http.post(f"/api/v1/agent/conversations/{customer.id}/messages",
                                       json={"text": "Let me check."})
                assert sent.status_code == 201, sent.text
                got = await expect(customer_ws, lambda e: e["type"] == "message"
                                   and e["message"]["role"] == "agent")
                assert got["message"]["text"] == "Let me check."

                back = await http.post(f"/api/v1/agent/conversations/{customer.id}/handback",
                                       json={"slots": {}})
                assert back.status_code == 200 and back.json()["state"] == "bot", back.text
                await expect(customer_ws, lambda e: e["type"] == "state" and e["state"] == "bot")
                turn = await asyncio.to_thread(customer.say, "hello")
                assert [m["role"] for m in turn["messages"]][:2] == ["customer", "bot"], turn
                await expect(customer_ws, lambda e: e["type"] == "message"
                             and e["message"]["role"] == "bot")
        return _upstream(customer_ws)


def _kill_mid_turn(service: runner.Service, *, after_s: float = 0.0,
                   timeout_s: float = 30) -> None:
    """SIGKILL ``service``'s main process ``after_s`` into a request that it still serves then:
    nginx keeps no idle connection to an upstream, so an open one on the service's port is a
    request in flight."""
    assert service.process is not None and service.alive()
    port = int(service.health_url.split("/")[2].rsplit(":", 1)[1])
    process = psutil.Process(service.process.pid)

    def serving() -> set[tuple[str, int]]:
        return {tuple(c.raddr) for c in process.net_connections("tcp")  # type: ignore[misc]
                if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED}

    deadline = time.monotonic() + timeout_s
    while True:
        assert time.monotonic() < deadline, f"no request stayed {after_s} s in {service.name}"
        if first := serving():
            time.sleep(after_s)
            if first & serving():
                break
        time.sleep(0.005)
    service.process.send_signal(signal.SIGKILL)
    service.process.wait(10)


def _talk(customer: Customer, keep_going: threading.Event, errors: list[str]) -> None:
    try:
        for turn, text in enumerate(itertools.cycle(SCRIPT)):
            if turn >= len(SCRIPT) and not keep_going.is_set():
                return
            customer.say(text)
    except Exception as exc:  # reported by the test
        errors.append(repr(exc))


def _problems(deployment: Deployment, customer: Customer, killed_phase: list[str]) -> list[str]:
    problems: list[str] = []
    transcript = customer.transcript()
    asked = [m for m in transcript if m["role"] == "customer"]
    if [m["client_message_id"] for m in asked] != customer.sent:
        problems.append(f"stored {[m['client_message_id'] for m in asked]}, "
                        f"sent {customer.sent}")
    replies: dict[str, list[str]] = {}
    current = ""
    for message in transcript:
        if message["role"] == "customer":
            replies[current := message["id"]] = []
        elif message["role"] == "bot" and current:
            replies[current].append(message["id"])
    for client_id in killed_phase:
        question, *answer = customer.accepted[client_id]
        if not answer:
            problems.append(f"no reply to {question['text']!r} ({client_id})")
        elif replies.get(question["id"]) != [m["id"] for m in answer]:
            problems.append(f"replies to {question['text']!r} changed after it was answered: "
                            f"{replies.get(question['id'])} != {[m['id'] for m in answer]}")
    tracker = httpx.get(f"{deployment.rasa_url}/conversations/{customer.id}/tracker",
                        params={"token": deployment.settings.rasa_token.get_secret_value()},
                        timeout=30).json()
    seen = [(e.get("metadata") or {}).get("parley_message_id", "") for e in tracker["events"]
            if e["event"] == "user"]
    for client_id in killed_phase:
        message_id = customer.accepted[client_id][0]["id"]
        if seen.count(message_id) != 1:
            problems.append(f"Rasa saw {message_id} {seen.count(message_id)} times")
    return problems


def test_two_of_each_behind_nginx_live_across_processes_and_nothing_lost_on_kill(
        deployment: Deployment) -> None:
    login = httpx.post(f"{deployment.url}/api/v1/auth/login",
                       json={"email": "ana@example.com", "password": PASSWORD})
    assert login.status_code == 200, login.text
    agent_token = login.json()["token"]
    agent_auth = {"Authorization": f"Bearer {agent_token}"}
    online = httpx.put(f"{deployment.url}/api/v1/agent/presence", headers=agent_auth,
                       json={"presence": "online"})
    assert online.status_code == 200, online.text
    created = httpx.post(f"{deployment.url}/api/v1/conversations", json={"locale": "en"})
    assert created.status_code == 201, created.text
    customer = Customer(deployment.url, created.json()["id"], created.json()["token"])

    customer_upstream = asyncio.run(_live_exchange(deployment, customer, agent_auth,
                                                   agent_token))

    # The customer keeps talking while the API process their socket was on, then one Rasa
    # process, are killed in the middle of a turn.
    before, before_retries = len(customer.sent), len(customer.retries)
    keep_going, errors = threading.Event(), list[str]()
    keep_going.set()
    talker = threading.Thread(target=_talk, args=(customer, keep_going, errors))
    talker.start()
    try:
        time.sleep(1)
        _kill_mid_turn(deployment.api_of(customer_upstream))
        time.sleep(2)
        _kill_mid_turn(deployment.services["rasa"][0], after_s=0.06)
        time.sleep(3)
    finally:
        keep_going.clear()
        talker.join(300)
    assert not errors, errors
    assert len(customer.retries) > before_retries, "no message was in flight at a kill"
    # The killed Rasa's lock ticket holds its conversation no longer than one wait for Rasa.
    slowest = max(customer.took[c] for c in customer.sent[before:])
    assert slowest < 2 * RASA_TIMEOUT_S + 5, f"a message took {slowest:.1f} s to be answered"
    print(f"{len(customer.sent) - before} messages while processes died, the slowest answered "
          f"in {slowest:.1f} s; retried: {customer.retries[before_retries:]}")

    # The survivors carry on, live included: a new socket through nginx hears the next reply.
    async def still_live() -> None:
        stream = ws_url(deployment.url, f"/api/v1/conversations/{customer.id}/stream"
                                        f"?token={customer.token}")
        async with websockets.connect(stream) as ws:
            await expect(ws, lambda e: e["type"] == "hello")  # subscribed
            await asyncio.to_thread(customer.say, "thanks!")
            await expect(ws, lambda e: e["type"] == "message" and e["message"]["role"] == "bot")

    asyncio.run(still_live())
    problems = _problems(deployment, customer, customer.sent[before:])
    assert not problems, "\n".join(problems)
