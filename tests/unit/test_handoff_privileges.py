"""Least privilege in the console: who may read a conversation, take it, and write notes.

An agent reads what they hold, what waits in a queue they could claim (language and skill,
as routing decides) and what they handled before (the audit trail shows it); they write
replies and notes only where they hold the conversation. Admins read everything and may add
notes anywhere.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_handoff import login, make_agent, say

pytestmark = pytest.mark.unit
AGENT = "/api/v1/agent/conversations"


@pytest.fixture
def staff(settings):  # type: ignore[no-untyped-def]
    make_agent(settings, "ana@example.com", languages=["en", "zh"])
    make_agent(settings, "bo@example.com", languages=["en"], skills=["billing"])
    make_agent(settings, "cy@example.com", languages=["en"])
    make_agent(settings, "root@example.com", role="admin")


@pytest.fixture
def people(client, staff) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    return {name: login(client, f"{name}@example.com")
            for name in ("ana", "bo", "cy", "root")}


def queued_chat(client, dialogue, locale: str = "en") -> dict[str, Any]:  # type: ignore[no-untyped-def]
    dialogue.handoff_on = "a person please"
    conversation = client.post("/api/v1/conversations", json={"locale": locale}).json()
    conversation["headers"] = {"Authorization": f"Bearer {conversation['token']}"}
    assert say(client, conversation, "a person please", "h")["state"] == "queued"
    return conversation


def readers(client, people, conversation_id: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {name: client.get(f"{AGENT}/{conversation_id}", headers=headers).status_code
            for name, headers in people.items()}


def note(client, headers, conversation_id: str):  # type: ignore[no-untyped-def]
    return client.post(f"{AGENT}/{conversation_id}/notes", headers=headers,
                       json={"text": "internal"})


def error(response) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    return response.status_code, response.json()["error"]["code"]


def test_a_queued_conversation_is_read_by_those_who_could_take_it(client, dialogue, people):
    english, chinese = queued_chat(client, dialogue), queued_chat(client, dialogue, "zh")
    assert readers(client, people, english["id"]) == {"ana": 200, "bo": 200, "cy": 200,
                                                      "root": 200}
    assert readers(client, people, chinese["id"]) == {"ana": 200, "bo": 403, "cy": 403,
                                                      "root": 200}
    denied = client.get(f"{AGENT}/{chinese['id']}", headers=people["bo"])
    assert error(denied) == (403, "not_your_conversation")
    queue = {name: [c["id"] for c in client.get("/api/v1/agent/queue", headers=h).json()]
             for name, h in people.items()}
    assert queue["bo"] == queue["cy"] == [english["id"]]
    assert set(queue["ana"]) == set(queue["root"]) == {english["id"], chinese["id"]}


def test_a_conversation_with_the_bot_is_for_admins_only(client, conversation, people):
    say(client, conversation, "hello", "b")
    assert readers(client, people, conversation["id"]) == {"ana": 403, "bo": 403, "cy": 403,
                                                           "root": 200}
    missing = client.get(f"{AGENT}/{'0' * 32}", headers=people["ana"])
    assert error(missing) == (404, "conversation_not_found")


def test_a_held_conversation_is_read_by_its_holder_and_admins(client, dialogue, people):
    chat = queued_chat(client, dialogue)
    assert client.post(f"{AGENT}/{chat['id']}/claim", headers=people["ana"]).status_code == 200
    assert readers(client, people, chat["id"]) == {"ana": 200, "bo": 403, "cy": 403,
                                                   "root": 200}


def test_notes_go_only_where_the_agent_holds_the_conversation(client, dialogue, people):
    chat = queued_chat(client, dialogue)
    assert error(note(client, people["ana"], chat["id"])) == (403, "not_your_conversation")
    client.post(f"{AGENT}/{chat['id']}/claim", headers=people["ana"])
    assert note(client, people["ana"], chat["id"]).status_code == 201
    assert error(note(client, people["bo"], chat["id"])) == (403, "not_your_conversation")
    assert note(client, people["root"], chat["id"]).status_code == 201
    reply = client.post(f"{AGENT}/{chat['id']}/messages", headers=people["bo"],
                        json={"text": "hi"})
    assert error(reply) == (403, "not_your_conversation")
    notes = client.get(f"{AGENT}/{chat['id']}", headers=people["ana"]).json()["notes"]
    assert len(notes) == 2


def test_admins_add_notes_anywhere(client, conversation, dialogue, people):
    say(client, conversation, "hello", "b")  # still with the bot
    assert note(client, people["root"], conversation["id"]).status_code == 201
    assert error(note(client, people["ana"], conversation["id"])) == (
        403, "not_your_conversation")


def test_agents_keep_reading_what_they_handled(client, dialogue, people):
    chat = queued_chat(client, dialogue)
    client.post(f"{AGENT}/{chat['id']}/claim", headers=people["ana"])
    moved = client.post(f"{AGENT}/{chat['id']}/transfer", headers=people["ana"],
                        json={"skill": "billing"})
    assert moved.json()["state"] == "queued"
    # Waiting for billing now: bo could take it, cy could not; ana handled it.
    assert readers(client, people, chat["id"]) == {"ana": 200, "bo": 200, "cy": 403,
                                                   "root": 200}
    assert error(note(client, people["ana"], chat["id"])) == (403, "not_your_conversation")
    client.post(f"{AGENT}/{chat['id']}/claim", headers=people["bo"])
    client.post(f"{AGENT}/{chat['id']}/resolve", headers=people["bo"])
    assert readers(client, people, chat["id"]) == {"ana": 200, "bo": 200, "cy": 403,
                                                   "root": 200}
    resolved = {name: [c["id"] for c in client.get(f"{AGENT}?state=resolved",
                                                   headers=h).json()]
                for name, h in people.items()}
    assert resolved == {"ana": [chat["id"]], "bo": [chat["id"]], "cy": [],
                        "root": [chat["id"]]}


def test_an_agent_a_conversation_was_transferred_to_handled_it(client, dialogue, people):
    chat = queued_chat(client, dialogue)
    client.post(f"{AGENT}/{chat['id']}/claim", headers=people["ana"])
    cy_id = client.get("/api/v1/auth/me", headers=people["cy"]).json()["id"]
    client.post(f"{AGENT}/{chat['id']}/transfer", headers=people["ana"], json={"agent_id": cy_id})
    assert client.post(f"{AGENT}/{chat['id']}/resolve", headers=people["root"]).status_code == 200
    assert readers(client, people, chat["id"]) == {"ana": 200, "bo": 403, "cy": 200,
                                                   "root": 200}


def test_claiming_by_id_follows_routing(client, dialogue, people):
    chinese = queued_chat(client, dialogue, "zh")
    denied = client.post(f"{AGENT}/{chinese['id']}/claim", headers=people["bo"])
    assert error(denied) == (403, "not_your_queue")
    assert client.post(f"{AGENT}/{chinese['id']}/claim", headers=people["root"]).status_code \
        == 200
    taken = client.post(f"{AGENT}/{chinese['id']}/claim", headers=people["ana"])
    assert error(taken) == (409, "already_assigned")
