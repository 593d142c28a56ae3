"""Chaos: ``kill -9`` of each of Parley's processes during 20 conversations.

The whole supervisor (``parley run``) runs as a subprocess on free ports with a temporary state
folder, because the supervisor is what brings a killed process back. Twenty conversations talk
to the public API concurrently, retrying a failed or refused message with the same
``client_message_id``, while the NLU service, the action server, Rasa and the API are each
killed in turn (SIGKILL of the supervisor's child, its main process only: what a crash or the
OOM killer does). Under ``parley run`` the embedded worker is a thread of the API process (it
holds the queue's lock), so killing the API kills the worker too: tasks are queued just before
that kill, and each must be done once the restarted API works the queue again.

Afterwards: every message is stored exactly once, each got its bot reply exactly once (no reply
added or repeated by a retry or the recovery pass, and Rasa saw each message once), and
``/readyz`` was ready again within 30 s of each kill.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
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

from core.config import ROOT
from tests.stack import stack_env
from workers.base import dumps_payload
from workers.sqlite_journal import SQLiteJournal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONVERSATIONS = 20
RECOVERY_S = 30.0
# What each conversation says, in a loop: a rule (greet), knowledge answers (the action server)
# and a thank-you; none of it hands the conversation to a person or closes it.
SCRIPT = ["hello", "what payment methods do you accept?", "how long does shipping take?",
          "thanks!"]
# The supervisor's children, by what their command line contains; killed in this order.
CHILDREN: dict[str, tuple[str, ...]] = {
    "actions": ("rasa_sdk",),
    "nlu": ("serve", "nlu"),
    "rasa": ("run", "--enable-api"),
    "api": ("serve", "api"),
}


@dataclass
class Parley:
    process: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    var_dir: Path

    def child(self, name: str) -> psutil.Process | None:
        """The supervisor's child process ``name`` (its main process), if one runs."""
        wanted = CHILDREN[name]
        for child in psutil.Process(self.process.pid).children():
            try:
                cmdline = child.cmdline()
            except psutil.Error:
                continue
            if all(part in cmdline for part in wanted) and child.status() != psutil.STATUS_ZOMBIE:
                return child
        return None

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture(scope="module")
def parley(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parley]:
    """``parley run`` for the demo project, built from scratch in a temporary folder."""
    root = tmp_path_factory.mktemp("chaos")
    env = {**os.environ, **stack_env(root)}
    log = (root / "parley-run.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "web.cli", "run"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    running = Parley(process, f"http://127.0.0.1:{env['PARLEY_API_PORT']}", env,
                     Path(env["PARLEY_VAR_DIR"]))
    try:
        deadline = time.monotonic() + 600  # trains the NLU and Rasa models first
        while not running.ready():
            assert process.poll() is None, (root / "parley-run.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "parley run was not ready in 10 minutes"
            time.sleep(1)
        yield running
    finally:
        process.send_signal(signal.SIGINT)  # stops every child's process group
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@dataclass
class Conversation:
    """One customer on the public API, who retries until each message is accepted."""

    url: str
    id: str = ""
    token: str = ""
    sent: list[str] = field(default_factory=list)  # client message ids, in order
    accepted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id → turn
    retries: int = 0
    errors: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send until a 2xx answer: a refused connection or a 5xx (a process is down) is
        retried, the same request with the same ids, and a 429 after its ``Retry-After``;
        another 4xx is the platform's verdict."""
        deadline = time.monotonic() + 180
        while True:
            try:
                response = httpx.request(method, f"{self.url}{path}", timeout=60, **kwargs)
            except httpx.TransportError as exc:
                problem, wait = type(exc).__name__, 1.0
            else:
                if response.status_code < 500 and response.status_code != 429:
                    return response
                problem = f"{response.status_code} {response.text[:200]}"
                wait = float(response.headers.get("retry-after", 1))
            self.retries += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: still failing after 180 s: {problem}")
            time.sleep(wait)

    def talk(self, keep_going: threading.Event) -> None:
        try:
            created = self.call("POST", "/api/v1/conversations", json={"locale": "en"})
            assert created.status_code == 201, created.text
            self.id, self.token = created.json()["id"], created.json()["token"]
            headers = {"Authorization": f"Bearer {self.token}"}
            for turn, text in enumerate(itertools.cycle(SCRIPT)):
                if turn >= len(SCRIPT) and not keep_going.is_set():
                    return
                client_id = uuid.uuid4().hex
                self.sent.append(client_id)
                response = self.call("POST", f"/api/v1/conversations/{self.id}/messages",
                                     headers=headers,
                                     json={"text": text, "client_message_id": client_id})
                assert response.status_code == 200, response.text
                self.accepted[client_id] = response.json()["messages"]
        except Exception as exc:  # reported by the test, with the others
            self.errors.append(repr(exc))

    def transcript(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/conversations/{self.id}/messages",
                             headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        assert response.status_code == 200, response.text
        return list(response.json()["messages"])


def _kill_each(parley: Parley, recovery: dict[str, float], failures: list[str],
               tasks: list[str]) -> None:
    """``kill -9`` each child in turn; how long until the platform was ready again."""
    for name in CHILDREN:
        victim = parley.child(name)
        if victim is None:
            failures.append(f"{name}: no such child of the supervisor")
            continue
        if name == "api":  # the embedded worker lives here: it holds the queue's lock
            assert _holds_queue_lock(parley, victim), "the API process does not run the worker"
            tasks.extend(_queue_tasks(parley))  # some are running or waiting when it dies
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        while time.monotonic() - killed < 120:
            child = parley.child(name)
            if child is not None and child.pid != victim.pid and parley.ready():
                recovery[name] = time.monotonic() - killed
                break
            time.sleep(0.25)
        else:
            failures.append(f"{name}: not back and ready 120 s after kill -9")
        time.sleep(2)  # conversations carry on before the next kill


def _queue_tasks(parley: Parley, count: int = 20) -> list[str]:
    """Queue ``count`` worker tasks (graph upserts, as the entity editor saves) as another
    process does (the CLI, the Kafka consumer); their ids."""
    journal = SQLiteJournal(parley.var_dir / "queue.db")
    batch = uuid.uuid4().hex[:8]
    try:
        return [journal.add("upsert_entity", dumps_payload(
            {"label": "Product", "key": f"chaos-{batch}-{i}", "props": {"name": f"Chaos {i}"}}))
            for i in range(count)]
    finally:
        journal.close()


def _task_states(parley: Parley, tasks: list[str]) -> dict[str, str]:
    journal = SQLiteJournal(parley.var_dir / "queue.db")
    try:
        return {task: (journal.status(task) or {}).get("state", "missing") for task in tasks}
    finally:
        journal.close()


def _holds_queue_lock(parley: Parley, process: psutil.Process) -> bool:
    lock = str(parley.var_dir / "queue.db.lock")
    return any(f.path == lock for f in process.open_files())


def _rasa_message_ids(parley: Parley, conversation_id: str) -> list[str]:
    """The Parley message ids of the user turns in Rasa's tracker."""
    rasa = parley.env["PARLEY_RASA_URL"]
    tracker = httpx.get(f"{rasa}/conversations/{conversation_id}/tracker",
                        params={"token": parley.env["PARLEY_RASA_TOKEN"]}, timeout=30).json()
    return [(e.get("metadata") or {}).get("parley_message_id", "") for e in tracker["events"]
            if e["event"] == "user"]


def _check_conversation(parley: Parley, conversation: Conversation) -> list[str]:
    """What is wrong with one conversation's transcript and Rasa tracker, if anything."""
    problems: list[str] = []
    transcript = conversation.transcript()
    customer = [m for m in transcript if m["role"] == "customer"]
    # Every accepted message stored once, in the order sent; nothing else.
    stored = [m["client_message_id"] for m in customer]
    if stored != conversation.sent:
        problems.append(f"{conversation.id}: stored {stored}, sent {conversation.sent}")
    # Each message's replies: the ones its accepted answer had, none added or repeated later.
    turns: dict[str, list[str]] = {}
    for message in transcript:
        if message["role"] == "customer":
            turns[current := message["id"]] = []
        elif message["role"] == "bot":
            turns[current].append(message["id"])
    for client_id, (asked, *answered) in conversation.accepted.items():
        if not answered:
            problems.append(f"{conversation.id}: no bot reply to {asked['text']!r} ({client_id})")
        elif turns.get(asked["id"]) != [m["id"] for m in answered]:
            problems.append(f"{conversation.id}: replies to {asked['text']!r} changed after "
                            f"it was answered: {turns.get(asked['id'])}")
    # Rasa handled each message once (a retry is answered from its tracker, not run again).
    seen = _rasa_message_ids(parley, conversation.id)
    if sorted(seen) != sorted(m["id"] for m in customer):
        problems.append(f"{conversation.id}: Rasa saw {seen}, stored {customer}")
    return problems


def test_nothing_is_lost_or_duplicated_when_each_process_is_killed(parley: Parley) -> None:
    conversations = [Conversation(parley.url) for _ in range(CONVERSATIONS)]
    keep_going = threading.Event()
    keep_going.set()
    talkers = [threading.Thread(target=c.talk, args=(keep_going,)) for c in conversations]
    for talker in talkers:
        talker.start()
    recovery: dict[str, float] = {}
    failures: list[str] = []
    tasks: list[str] = []
    try:
        time.sleep(3)  # every conversation is under way
        _kill_each(parley, recovery, failures, tasks)
    finally:
        keep_going.clear()
        for talker in talkers:
            talker.join(300)
    messages = sum(len(c.sent) for c in conversations)
    retries = sum(c.retries for c in conversations)
    print(f"{messages} messages in {CONVERSATIONS} conversations, {retries} retries; "
          f"ready again after kill -9 in {recovery}")
    assert not failures, (failures, recovery)
    assert all(t <= RECOVERY_S for t in recovery.values()), recovery
    assert parley.ready()
    api = parley.child("api")
    assert api is not None and _holds_queue_lock(parley, api), "the worker did not come back"
    deadline = time.monotonic() + RECOVERY_S  # every task queued before the kill gets done
    while set((states := _task_states(parley, tasks)).values()) != {"done"}:
        assert time.monotonic() < deadline, states
        time.sleep(0.5)

    problems = [f"{c.id}: {e}" for c in conversations for e in c.errors]
    for conversation in conversations:
        problems += _check_conversation(parley, conversation)
    assert not problems, "\n".join(problems)
