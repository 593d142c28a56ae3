"""Data care: ``parley retention`` deletes old conversations everywhere they are stored, and
``parley customer export|delete`` covers one person's data and no one else's.

Conversations are made through the real API (hand-off, notes and CSAT included); Rasa's tracker
is its SQLite ``events`` table beside the app database, as ``parley run`` configures it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import update
from typer.testing import CliRunner

from core import db
from core.config import Settings, get_settings
from core.customers import CustomerIdentity, mint_customer_token
from tests.unit.test_handoff import login, make_agent
from web.cli import app as cli_app

pytestmark = pytest.mark.unit
KEY = "unit-customer-signing-key-0123456789"
OLD = timedelta(days=100)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"customer_signing_key": SecretStr(KEY)})


def start(client: Any, *, email: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"locale": "en"}
    if email:
        body["customer_token"] = mint_customer_token(CustomerIdentity(email=email), key=KEY)
    response = client.post("/api/v1/conversations", json=body)
    assert response.status_code == 201, response.text
    conversation = response.json()
    conversation["headers"] = {"Authorization": f"Bearer {conversation['token']}"}
    return conversation


def say(client: Any, conversation: dict[str, Any], *texts: str) -> None:
    for text in texts:
        response = client.post(f"/api/v1/conversations/{conversation['id']}/messages",
                               headers=conversation["headers"],
                               json={"text": text, "client_message_id": uuid.uuid4().hex})
        assert response.status_code == 200, response.text


def transcript(client: Any, conversation: dict[str, Any]) -> Any:
    return client.get(f"/api/v1/conversations/{conversation['id']}/messages",
                      headers=conversation["headers"])


def rows(settings: Settings, table: str, column: str, value: str) -> int:
    with sqlite3.connect(settings.var_dir / "parley.db") as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?",
                                      (value,)).fetchone()[0])


def tracker(settings: Settings, ids: list[str]) -> Path:
    """Rasa's SQL tracker store, as Rasa 3.6 creates it, with an event per conversation."""
    path = settings.var_dir / "rasa" / "tracker.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, "
                           "sender_id VARCHAR(255) NOT NULL, type_name VARCHAR(255) NOT NULL, "
                           "timestamp FLOAT, intent_name VARCHAR(255), "
                           "action_name VARCHAR(255), data TEXT)")
        connection.executemany("INSERT INTO events (sender_id, type_name, data) "
                               "VALUES (?, 'user', '{\"text\": \"hello\"}')", [(i,) for i in ids])
    return path


def tracker_events(path: Path, conversation_id: str) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT count(*) FROM events WHERE sender_id = ?",
                                      (conversation_id,)).fetchone()[0])


def age(settings: Settings, conversation_id: str, by: timedelta = OLD) -> None:
    """Move every timestamp of a conversation ``by`` into the past."""
    from conversations.models import Conversation, Message, StateTransition
    from handoff.models import Note

    async def work() -> None:
        engine = db.create_engine(settings.database_url)
        try:
            async with db.sessionmaker(engine)() as session, session.begin():
                when = db.utcnow() - by
                await session.execute(update(Conversation).where(
                    Conversation.id == conversation_id).values(created_at=when, updated_at=when))
                for model in (Message, StateTransition, Note):
                    await session.execute(update(model).where(
                        model.conversation_id == conversation_id).values(created_at=when))
        finally:
            await engine.dispose()

    asyncio.run(work())


def fold(settings: Settings) -> None:
    from analytics.fold import fold_all

    async def work() -> None:
        engine = db.create_engine(settings.database_url)
        try:
            await fold_all(db.sessionmaker(engine), reopen_days=7)
        finally:
            await engine.dispose()

    asyncio.run(work())


def parley(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    for name, value in (("ENVIRONMENT", "test"), ("VAR_DIR", str(settings.var_dir)),
                        ("MODELS_DIR", str(settings.models_dir)),
                        ("SECRET_KEY", settings.secret_key.get_secret_value()),
                        ("RASA_TOKEN", settings.rasa_token.get_secret_value())):
        monkeypatch.setenv(f"PARLEY_{name}", value)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli_app, list(args))
    finally:
        get_settings.cache_clear()


def handed_off_with_note(client: Any, settings: Settings, dialogue: Any,
                         conversation: dict[str, Any], note: str) -> None:
    make_agent(settings, "ana@example.com")
    dialogue.handoff_on = "a human please"
    say(client, conversation, "a human please")
    agent = login(client, "ana@example.com")
    url = f"/api/v1/agent/conversations/{conversation['id']}"
    assert client.post(f"{url}/claim", headers=agent).status_code == 200
    assert client.post(f"{url}/notes", headers=agent, json={"text": note}).status_code == 201
    assert client.post(f"{url}/resolve", headers=agent).status_code == 200
    assert client.post(f"/api/v1/conversations/{conversation['id']}/csat",
                       headers=conversation["headers"],
                       json={"score": 5, "comment": "Ana was great"}).status_code == 204


# ---------------------------------------------------------------- retention

def test_retention_deletes_old_conversations_everywhere_and_keeps_recent_ones(
        client, settings, dialogue, monkeypatch):  # type: ignore[no-untyped-def]
    old, old_too, recent = start(client), start(client), start(client)
    say(client, old, "my card 4111 1111 1111 1111 was charged twice")
    say(client, old_too, "hello")
    say(client, recent, "where is my parcel?")
    handed_off_with_note(client, settings, dialogue, old, "refund the double charge")
    fold(settings)
    path = tracker(settings, [old["id"], old_too["id"], recent["id"]])
    age(settings, old["id"])
    age(settings, old_too["id"])
    age(settings, recent["id"], timedelta(days=10))
    recent_messages = transcript(client, recent).json()["messages"]

    result = parley(settings, monkeypatch, "retention", "--days", "30", "--batch-size", "1")

    assert result.exit_code == 0, result.output
    assert "Deleted 2 conversation(s)" in result.output and "in 2 batch(es)" in result.output
    assert transcript(client, old).json()["error"]["code"] == "conversation_not_found"
    for table in ("messages", "notes", "state_transitions", "outbox_events"):
        assert rows(settings, table, "conversation_id", old["id"]) == 0, table
    assert tracker_events(path, old["id"]) == tracker_events(path, old_too["id"]) == 0
    # The text-free analytics fact stays, so past figures do not change.
    assert rows(settings, "analytics_conversations", "conversation_id", old["id"]) == 1
    assert transcript(client, recent).json()["messages"] == recent_messages
    assert tracker_events(path, recent["id"]) == 1

    again = parley(settings, monkeypatch, "retention", "--days", "30")
    assert again.exit_code == 0 and "Deleted 0 conversation(s)" in again.output
    assert parley(settings, monkeypatch, "retention", "--days", "5").exit_code == 0
    assert transcript(client, recent).status_code == 404


def test_retention_needs_a_number_of_days(settings, monkeypatch):  # type: ignore[no-untyped-def]
    result = parley(settings, monkeypatch, "retention")
    assert result.exit_code == 2 and "--days" in result.output


def test_the_worker_applies_the_retention_setting_once_a_day(client, settings, tmp_path):  # type: ignore[no-untyped-def]
    from workers.embedded import EmbeddedQueue
    from workers.schedule import enqueue_due

    old, recent = start(client), start(client)
    say(client, old, "hello")
    say(client, recent, "hello again")
    age(settings, old["id"])
    off = EmbeddedQueue(tmp_path / "off.db", settings=settings)
    assert enqueue_due(off, settings) == []
    off.close()

    kept = settings.model_copy(update={"retention_days": 30})
    queue = EmbeddedQueue(tmp_path / "queue.db", settings=kept, poll_s=0.05)
    queue.start()  # the worker enqueues today's run at once
    try:
        deadline = time.monotonic() + 30
        key = f"periodic:conversations.retention:{int(time.time() // 86400)}"
        while (task_id := queue.task_for_key(key)) is None or \
                (queue.status(task_id) or {}).get("state") != "done":
            assert time.monotonic() < deadline, queue.status(task_id) if task_id else key
            time.sleep(0.05)
        assert enqueue_due(queue, kept) == [task_id]  # once per day
        assert enqueue_due(queue, kept, now=time.time() + 86400) != [task_id]
    finally:
        queue.close()
    assert transcript(client, old).status_code == 404
    assert transcript(client, recent).status_code == 200


# ---------------------------------------------------------------- one person's data

def test_export_holds_the_persons_conversations_and_no_one_elses(
        client, settings, dialogue, monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    verified = start(client, email="li.wei@example.com")
    say(client, verified, "is my kettle under warranty?")
    handed_off_with_note(client, settings, dialogue, verified, "asked about warranty")
    anonymous = start(client)
    say(client, anonymous, "where is PL-310552?", "my email is Li.Wei@example.com")
    someone_else = start(client)
    say(client, someone_else, "I am anna.lee@example.com, where is my blender?")

    out = tmp_path / "li.json"
    result = parley(settings, monkeypatch, "customer", "export", "--email",
                    "LI.WEI@example.com", "--out", str(out))

    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o077 == 0
    exported = json.loads(out.read_text())
    text = out.read_text()
    assert "anna.lee" not in text and "blender" not in text
    conversations = {c["id"]: c for c in exported["conversations"]}
    assert set(conversations) == {verified["id"], anonymous["id"]}
    first = conversations[verified["id"]]
    assert first["matched_by"] == ["identity"]
    assert first["verified_identity"] == {"email": "li.wei@example.com"}
    assert first["csat"] == {"score": 5, "comment": "Ana was great"}
    assert first["handoff"]["reason"] == "customer_request"
    assert "is my kettle under warranty?" in [m["text"] for m in first["messages"]]
    assert [n["text"] for n in first["other"]["notes"]] == ["asked about warranty"]
    assert {"from": "queued", "to": "with_agent"}.items() <= first["state_changes"][1].items()
    second = conversations[anonymous["id"]]
    assert second["matched_by"] == ["message"] and second["verified_identity"] is None
    assert [m["text"] for m in second["messages"] if m["role"] == "customer"] == [
        "where is PL-310552?", "my email is Li.Wei@example.com"]

    unknown = parley(settings, monkeypatch, "customer", "export", "--customer-id", "C-404")
    assert unknown.exit_code == 2 and "No conversation is stored" in unknown.output
    both = parley(settings, monkeypatch, "customer", "export", "--email", "a@b.co",
                  "--customer-id", "C-1")
    assert both.exit_code == 2


def three_people(client: Any, settings: Settings) -> tuple[dict, dict, dict, Path]:
    """A verified customer, an anonymous chat quoting their e-mail and someone else's chat,
    with Rasa trackers for the first and the last: what a deletion must tell apart."""
    verified = start(client, email="li.wei@example.com")
    say(client, verified, "hello")
    anonymous = start(client)
    say(client, anonymous, "my email is li.wei@example.com")
    someone_else = start(client)
    say(client, someone_else, "my email is anna.lee@example.com")
    path = tracker(settings, [verified["id"], someone_else["id"]])
    return verified, anonymous, someone_else, path


def test_delete_needs_yes_then_removes_only_that_person(
        client, settings, monkeypatch):  # type: ignore[no-untyped-def]
    verified, anonymous, someone_else, path = three_people(client, settings)

    dry = parley(settings, monkeypatch, "customer", "delete", "--email", "li.wei@example.com")
    assert dry.exit_code == 1 and "2 conversation(s)" in dry.output
    assert transcript(client, verified).status_code == 200

    result = parley(settings, monkeypatch, "customer", "delete", "--email",
                    "li.wei@example.com", "--yes")

    assert result.exit_code == 0, result.output
    assert "Deleted 2 conversation(s)" in result.output
    for gone in (verified, anonymous):
        assert transcript(client, gone).status_code == 404
        assert rows(settings, "outbox_events", "conversation_id", gone["id"]) == 0
    assert tracker_events(path, verified["id"]) == 0
    assert transcript(client, someone_else).status_code == 200
    assert tracker_events(path, someone_else["id"]) == 1
    assert parley(settings, monkeypatch, "customer", "delete", "--email",
                  "li.wei@example.com", "--yes").exit_code == 2  # nothing left to find


def test_the_database_has_no_other_place_for_conversation_text(client, settings):  # type: ignore[no-untyped-def]
    """Every table tied to a conversation either is erased with it or holds no free text."""
    from conversations.erasure import conversation_tables

    start(client)

    async def tables() -> tuple[set[str], set[str]]:
        engine = db.create_engine(settings.database_url)
        try:
            async with db.sessionmaker(engine)() as session:
                found = await conversation_tables(session)
                return {t.name for t in found.erased}, {t.name for t in found.kept}
        finally:
            await engine.dispose()

    erased, kept = asyncio.run(tables())
    assert {"messages", "notes", "state_transitions", "outbox_events",
            "analytics_answers"} <= erased
    assert {"analytics_conversations", "analytics_parses"} <= kept
