"""With the real Rasa server: hand-off pauses the bot; hand-back resumes it with the slots the
agent set."""

from __future__ import annotations

import uuid

import httpx
import pytest

from staff.bootstrap import create_agent
from staff.schemas import AgentCreate
from tests.integration.test_conversations import Chat, replies
from tests.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def staff_session(stack: Stack) -> dict[str, str]:
    email = f"agent-{uuid.uuid4().hex[:8]}@example.com"
    create_agent(stack.settings, AgentCreate(email=email, name="Integration Agent",
                                             password="integration-pw", languages=["en", "zh"]))
    token = httpx.post(f"{stack.api_url}/api/v1/auth/login",
                       json={"email": email, "password": "integration-pw"}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    httpx.put(f"{stack.api_url}/api/v1/agent/presence", headers=headers,
              json={"presence": "online"}).raise_for_status()
    return headers


def test_handoff_pauses_rasa_and_hand_back_resumes_with_the_agents_slots(stack: Stack) -> None:
    chat = Chat(stack, "en")
    agent = staff_session(stack)
    assert chat.say("I want to talk to a human")["state"] == "queued"
    claimed = httpx.post(f"{stack.api_url}/api/v1/agent/conversations/{chat.id}/claim",
                         headers=agent)
    assert claimed.status_code == 200, claimed.text

    users_before = sum(e["event"] == "user" for e in chat.tracker()["events"])
    paused = chat.say("where is my order?")
    assert [m["role"] for m in paused["messages"]] == ["customer"]
    assert sum(e["event"] == "user" for e in chat.tracker()["events"]) == users_before

    detail = httpx.get(f"{stack.api_url}/api/v1/agent/conversations/{chat.id}",
                       headers=agent).json()
    assert "request_human" in detail["summary"]["intents"]

    back = httpx.post(f"{stack.api_url}/api/v1/agent/conversations/{chat.id}/handback",
                      # The agent checked who the customer is: the order and its email.
                      headers=agent, json={"slots": {"order_id": "PL-204817",
                                                     "email": "anna.lee@example.com"}})
    assert back.status_code == 200, back.text
    tracker = chat.tracker()
    assert tracker["slots"]["order_id"] == "PL-204817"
    assert tracker["slots"]["handoff_requested"] is False

    turn = chat.say("where is my order?")
    said = replies(turn)
    assert "PL-204817" in said and "DHL" in said, said  # nothing is asked again
    assert turn["state"] == "bot"
