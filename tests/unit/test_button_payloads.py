"""Button payloads: only a button the bot offered may speak Rasa's ``/intent{...}`` syntax.

What reaches the dialogue engine is asserted with a scripted engine; that the Parley channel
neutralises typed slash commands is asserted against Rasa's own RegexMessageHandler in the
Rasa virtual environment (skipped where it is not installed).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conversations.dialogue import BotReply, Turn
from tests.unit.conftest import ScriptedDialogue

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
HUMAN = {"title": "Talk to a person", "payload": "/request_human"}
YES = {"title": "Yes", "payload": "/affirm"}


class ButtonDialogue(ScriptedDialogue):
    """Echoes like ``ScriptedDialogue``, records metadata, and offers buttons on "menu"."""

    def __init__(self) -> None:
        super().__init__()
        self.metadata: list[dict[str, Any]] = []

    async def handle(self, conversation_id: str, text: str, *, message_id: str,
                     metadata: dict[str, Any]) -> Turn:
        turn = await super().handle(conversation_id, text, message_id=message_id,
                                    metadata=metadata)
        self.metadata.append(dict(metadata))
        if text == "menu":  # buttons, then a second reply in the same turn
            turn.replies = [BotReply(text="Pick one", buttons=[HUMAN, YES]),
                            BotReply(text="Or just type.")]
        return turn


@pytest.fixture
def dialogue() -> ButtonDialogue:
    return ButtonDialogue()


def post(client, conversation, text: str, cid: str, payload: str | None = None):  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"text": text, "client_message_id": cid}
    if payload is not None:
        body["payload"] = payload
    return client.post(f"/api/v1/conversations/{conversation['id']}/messages",
                       headers=conversation["headers"], json=body)


def stored_customer_rows(settings) -> list[tuple[str, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    path = settings.database_url.split("///", 1)[1]
    with sqlite3.connect(path) as db:
        return [(text, json.loads(data or "{}")) for text, data in db.execute(
            "SELECT text, data FROM messages WHERE role = 'customer' ORDER BY seq")]


@pytest.mark.parametrize("text", ["/restart", "/request_human",
                                  '/order_status{"order_id":"PL-310552"}', "  /restart"])
def test_typed_commands_reach_the_dialogue_as_plain_text(client, conversation, dialogue, text):
    response = post(client, conversation, text, "t1")
    assert response.status_code == 200
    (_, said, _), = dialogue.calls
    assert said == text.strip()
    assert dialogue.metadata == [{"locale": "en"}]  # never marked as a payload


def test_a_click_sends_the_payload_and_stores_the_title(client, conversation, dialogue,
                                                        settings):
    post(client, conversation, "menu", "m")
    response = post(client, conversation, "Talk to a person", "c", payload="/request_human")
    assert response.status_code == 200, response.text
    customer = response.json()["messages"][0]
    assert (customer["role"], customer["text"]) == ("customer", "Talk to a person")
    assert dialogue.calls[-1][1] == "/request_human"
    assert dialogue.metadata[-1] == {"locale": "en", "payload": True}
    text, data = stored_customer_rows(settings)[-1]
    assert (text, data["payload"]) == ("Talk to a person", "/request_human")
    transcript = client.get(f"/api/v1/conversations/{conversation['id']}/messages",
                            headers=conversation["headers"]).json()["messages"]
    assert "/request_human" not in [m["text"] for m in transcript]


def test_the_stored_text_is_the_offered_title(client, conversation, dialogue):
    post(client, conversation, "menu", "m")
    response = post(client, conversation, "anything at all", "c", payload="/affirm")
    assert response.json()["messages"][0]["text"] == "Yes"


@pytest.mark.parametrize("payload", ['/order_status{"order_id":"PL-310552"}', "/restart",
                                     "/request_human "])
def test_a_payload_the_bot_did_not_offer_is_refused(client, conversation, dialogue, settings,
                                                    payload):
    post(client, conversation, "menu", "m")
    response = post(client, conversation, "Talk to a person", "c", payload=payload)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "unknown_payload")
    assert len(dialogue.calls) == 1
    assert len(stored_customer_rows(settings)) == 1  # nothing stored


def test_only_the_latest_bot_turn_counts(client, conversation, dialogue):
    first = post(client, conversation, "/request_human", "x", payload="/request_human")
    assert first.json()["error"]["code"] == "unknown_payload"  # no bot message yet
    post(client, conversation, "menu", "m")
    post(client, conversation, "something else", "s")  # a newer turn without buttons
    stale = post(client, conversation, "Yes", "c", payload="/affirm")
    assert (stale.status_code, stale.json()["error"]["code"]) == (422, "unknown_payload")


def test_a_click_is_idempotent_and_its_id_cannot_be_reused(client, conversation, dialogue):
    post(client, conversation, "menu", "m")
    first = post(client, conversation, "Yes", "c", payload="/affirm").json()
    # The retry finds the stored click, though the bot's latest turn is now its reply.
    assert post(client, conversation, "Yes", "c", payload="/affirm").json() == first
    assert len(dialogue.calls) == 2
    for text, payload in (("Yes", None), ("Talk to a person", "/request_human")):
        reused = post(client, conversation, text, "c", payload=payload)
        assert (reused.status_code, reused.json()["error"]["code"]) == (
            409, "client_message_id_reused")


def test_a_click_kept_while_rasa_was_down_is_sent_as_a_payload(client, conversation, dialogue):
    post(client, conversation, "menu", "m")
    dialogue.fail = True
    assert post(client, conversation, "Yes", "c", payload="/affirm").status_code == 503
    dialogue.fail = False
    assert post(client, conversation, "Yes", "c", payload="/affirm").status_code == 200
    assert dialogue.calls[-1][1] == "/affirm"
    assert dialogue.metadata[-1] == {"locale": "en", "payload": True}


def test_payload_length_is_bounded(client, conversation):
    response = post(client, conversation, "Yes", "c", payload="/" + "a" * 200)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")


# ---------------------------------------------------------------- the Rasa side

RASA_PYTHON = Path(os.environ.get("PARLEY_RASA_VENV", ROOT / ".venv-rasa")) / "bin" / "python"
CHANNEL_CHECK = r"""
import asyncio, json, sys
from types import SimpleNamespace
from rasa.nlu.classifiers.regex_message_handler import RegexMessageHandler
from rasa.shared.nlu.training_data.message import Message
from bot.components.parley_channel import ParleyInput

received = []

async def on_new_message(message):
    received.append(message)

class Request:
    def __init__(self, body):
        self.json = body
        self.headers = {"Authorization": "Bearer t"}
        store = SimpleNamespace(retrieve=self._empty)
        agent = SimpleNamespace(is_ready=lambda: True, tracker_store=store)
        self.app = SimpleNamespace(ctx=SimpleNamespace(agent=agent))

    async def _empty(self, sender):
        return SimpleNamespace(events=[], latest_message=None, active_loop_name=None,
                               current_slot_values=dict)

async def main():
    blueprint = ParleyInput().blueprint(on_new_message)
    (receive,) = [r.handler for r in blueprint._future_routes if r.uri == "/webhook"]
    out = []
    for text, metadata in json.loads(sys.argv[1]):
        metadata = {**metadata, "parley_message_id": "m"}
        response = await receive(Request({"sender": "s", "message": text, "metadata": metadata}))
        message = received.pop()
        (parsed,) = RegexMessageHandler().process([Message({"text": message.text})])
        out.append([response.status, message.text, parsed.get("intent")])
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.skipif(not RASA_PYTHON.exists(), reason="the Rasa virtual environment is absent")
def test_the_channel_lets_only_verified_payloads_be_commands() -> None:
    cases = [("/restart", {}), ("/request_human", {"payload": False}),
             (' \t/order_status{"order_id":"PL-310552"}', {}), ("//restart", {}),
             ("where is /my order", {}), ("/request_human", {"payload": True})]
    result = subprocess.run([str(RASA_PYTHON), "-c", CHANNEL_CHECK, json.dumps(cases)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PARLEY_RASA_TOKEN": "t"}, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert [status for status, _, _ in out] == [200] * len(cases)
    texts = [text for _, text, _ in out]
    assert texts[:4] == ["\uff0frestart", "\uff0frequest_human",
                         '\uff0forder_status{"order_id":"PL-310552"}', "\uff0f/restart"]
    assert texts[4:] == ["where is /my order", "/request_human"]
    assert [intent for _, _, intent in out[:5]] == [None] * 5  # Rasa reads no command
    assert out[5][2]["name"] == "request_human"  # the verified click is one
