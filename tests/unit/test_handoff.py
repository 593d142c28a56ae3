"""Hand-off to people: staff login and roles, triggers, routing, the console API, CSAT, SLA."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import pytest

from staff.schemas import AgentCreate

pytestmark = pytest.mark.unit
PASSWORD = "correct horse battery"


def make_agent(settings, email: str, *, role: str = "agent", **kw: Any) -> None:  # type: ignore[no-untyped-def]
    from staff.bootstrap import create_agent

    create_agent(settings, AgentCreate(email=email, name=email.split("@")[0], password=PASSWORD,
                                       role=role, **kw))  # type: ignore[arg-type]


def login(client, email: str, *, online: bool = True) -> dict[str, str]:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    headers = {"Authorization": f"Bearer {response.json()['token']}"}
    if online:
        assert client.put("/api/v1/agent/presence", headers=headers,
                          json={"presence": "online"}).status_code == 200
    return headers


def say(client, conversation, text: str, cid: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = client.post(f"/api/v1/conversations/{conversation['id']}/messages",
                           headers=conversation["headers"],
                           json={"text": text, "client_message_id": cid})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def staff(settings):  # type: ignore[no-untyped-def]
    make_agent(settings, "ana@example.com", languages=["en", "zh"])
    make_agent(settings, "bo@example.com", languages=["en"], skills=["billing"])
    make_agent(settings, "root@example.com", role="admin")


@pytest.fixture
def queued(client, conversation, dialogue):  # type: ignore[no-untyped-def]
    dialogue.handoff_on = "a human please"
    assert say(client, conversation, "a human please", "h")["state"] == "queued"
    return conversation


# ---------------------------------------------------------------- auth and roles

def test_login_refuses_a_wrong_password_without_saying_which_part(client, staff):
    for email, password in (("ana@example.com", "wrong"), ("nobody@example.com", PASSWORD)):
        response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_credentials"


def test_staff_routes_need_a_session(client, staff, conversation):
    for method, url in (("get", "/api/v1/agent/queue"), ("post", "/api/v1/agent/queue/next"),
                        ("get", "/api/v1/admin/agents"), ("get", "/api/v1/auth/me")):
        for headers in ({}, conversation["headers"]):  # a widget token is not a staff session
            response = getattr(client, method)(url, headers=headers)
            assert response.status_code == 401, (url, headers)


def test_only_admins_manage_accounts(client, staff):
    agent = login(client, "ana@example.com", online=False)
    admin = login(client, "root@example.com", online=False)
    body = {"email": "new@example.com", "name": "New", "password": "long enough pw"}
    denied = client.post("/api/v1/admin/agents", headers=agent, json=body)
    assert (denied.status_code, denied.json()["error"]["code"]) == (403, "admin_only")
    assert client.post("/api/v1/admin/agents", headers=admin, json=body).status_code == 201
    again = client.post("/api/v1/admin/agents", headers=admin, json=body)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "agent_exists")


def test_sessions_expire_and_logout_ends_them(client, staff, settings):
    headers = login(client, "ana@example.com", online=False)
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    response = client.get("/api/v1/auth/me", headers=headers)
    assert response.json()["error"]["code"] == "invalid_session"

    settings.agent_session_ttl_s = -1
    expired = login(client, "ana@example.com", online=False)
    assert client.get("/api/v1/auth/me", headers=expired).json()["error"]["code"] == \
        "session_expired"


def test_passwords_are_stored_hashed(settings, staff):
    import sqlite3

    path = settings.database_url.split("///", 1)[1]
    (stored,) = sqlite3.connect(path).execute(
        "SELECT password_hash FROM agents WHERE email='ana@example.com'").fetchone()
    assert PASSWORD not in stored and stored.startswith("scrypt$")


# ---------------------------------------------------------------- triggers

def test_two_misunderstood_messages_in_a_row_bring_a_person(client, conversation):
    assert say(client, conversation, "?? blorp", "a")["state"] == "bot"
    turn = say(client, conversation, "?? zzz", "b")
    assert turn["state"] == "queued"
    assert "support team" in turn["messages"][-1]["text"]


def test_one_misunderstood_message_between_good_ones_does_not(client, conversation):
    say(client, conversation, "?? blorp", "a")
    say(client, conversation, "fine", "b")
    assert say(client, conversation, "?? zzz", "c")["state"] == "bot"


@pytest.mark.parametrize("text", ["This is the WORST service ever, absolutely ridiculous!!!",
                                  "你们就是骗子，气死我了，我要投诉"])
def test_a_clearly_angry_customer_is_handed_over_with_priority(client, conversation, staff,
                                                               text):
    assert say(client, conversation, text, "x")["state"] == "queued"
    agent = login(client, "ana@example.com", online=False)
    (item,) = client.get("/api/v1/agent/queue", headers=agent).json()
    assert item["handoff_reason"] == "negative_sentiment" and item["priority"] == 2


@pytest.mark.parametrize("text", ["not bad at all, thanks", "the kettle is great", "这个不错"])
def test_ordinary_messages_are_not_negative(text):
    from handoff.sentiment import clearly_negative

    assert not clearly_negative(text)


# ---------------------------------------------------------------- the hand-off itself

def test_full_handoff_live_exchange_and_hand_back(client, queued, staff, dialogue):
    agent = login(client, "ana@example.com")
    queue = client.get("/api/v1/agent/queue", headers=agent).json()
    assert [c["id"] for c in queue] == [queued["id"]]
    assert queue[0]["handoff_reason"] == "customer_request" and queue[0]["waiting_s"] >= 0

    status = client.get(f"/api/v1/conversations/{queued['id']}/queue",
                        headers=queued["headers"]).json()
    assert status["position"] == 1 and status["estimated_wait_s"] is not None

    claimed = client.post("/api/v1/agent/queue/next", headers=agent).json()
    assert claimed["id"] == queued["id"] and claimed["state"] == "with_agent"

    # While a person holds the conversation the bot never answers.
    turn = say(client, queued, "my order PL-204817 is late", "c1")
    assert [m["role"] for m in turn["messages"]] == ["customer"]
    assert len(dialogue.calls) == 1

    sent = client.post(f"/api/v1/agent/conversations/{queued['id']}/messages", headers=agent,
                       json={"text": "Let me check that for you."})
    assert sent.status_code == 201
    note = client.post(f"/api/v1/agent/conversations/{queued['id']}/notes", headers=agent,
                       json={"text": "VIP customer, internal only"})
    assert note.status_code == 201

    transcript = client.get(f"/api/v1/conversations/{queued['id']}/messages",
                            headers=queued["headers"]).json()
    texts = [m["text"] for m in transcript["messages"]]
    assert "Let me check that for you." in texts
    assert not any("VIP" in t for t in texts)  # notes never reach the customer
    assert transcript["state"] == "with_agent"

    detail = client.get(f"/api/v1/agent/conversations/{queued['id']}", headers=agent).json()
    assert detail["summary"]["handoff_reason"] == "customer_request"
    assert detail["notes"][0]["text"] == "VIP customer, internal only"
    assert [m["role"] for m in detail["messages"]].count("agent") == 1

    back = client.post(f"/api/v1/agent/conversations/{queued['id']}/handback", headers=agent,
                       json={"slots": {"order_id": "PL-204817"}})
    assert back.json()["state"] == "bot"
    assert dialogue.slots[queued["id"]] == {"order_id": "PL-204817", "handoff_requested": False}
    turn = say(client, queued, "thanks, and the refund?", "c2")
    assert [m["role"] for m in turn["messages"]] == ["customer", "bot"]


def test_hand_back_keeps_the_conversation_when_rasa_is_down(client, queued, staff, dialogue):
    agent = login(client, "ana@example.com")
    client.post(f"/api/v1/agent/conversations/{queued['id']}/claim", headers=agent)
    dialogue.fail = True
    response = client.post(f"/api/v1/agent/conversations/{queued['id']}/handback",
                           headers=agent, json={"slots": {}})
    assert response.status_code == 503
    state = client.get(f"/api/v1/conversations/{queued['id']}/messages",
                       headers=queued["headers"]).json()["state"]
    assert state == "with_agent"


def test_two_agents_cannot_take_the_same_chat(client, queued, staff):
    ana, admin = login(client, "ana@example.com"), login(client, "root@example.com")
    url = f"/api/v1/agent/conversations/{queued['id']}/claim"
    assert client.post(url, headers=ana).status_code == 200
    second = client.post(url, headers=admin)
    assert (second.status_code, second.json()["error"]["code"]) == (409, "already_assigned")


def test_only_the_holder_may_write(client, queued, staff):
    ana, bo = login(client, "ana@example.com"), login(client, "bo@example.com")
    client.post(f"/api/v1/agent/conversations/{queued['id']}/claim", headers=ana)
    response = client.post(f"/api/v1/agent/conversations/{queued['id']}/messages", headers=bo,
                           json={"text": "hi"})
    assert (response.status_code, response.json()["error"]["code"]) == (
        403, "not_your_conversation")


def test_presence_and_capacity_are_respected(client, staff, settings, dialogue):
    make_agent(settings, "solo@example.com", max_concurrent=1)
    solo = login(client, "solo@example.com", online=False)
    dialogue.handoff_on = "human"
    conversations = []
    for i in range(2):
        conv = client.post("/api/v1/conversations", json={}).json()
        conv["headers"] = {"Authorization": f"Bearer {conv['token']}"}
        say(client, conv, "human", f"h{i}")
        conversations.append(conv)
    away = client.post("/api/v1/agent/queue/next", headers=solo)
    assert away.json()["error"]["code"] == "agent_not_online"
    client.put("/api/v1/agent/presence", headers=solo, json={"presence": "online"})
    assert client.post("/api/v1/agent/queue/next", headers=solo).json()["state"] == "with_agent"
    full = client.post("/api/v1/agent/queue/next", headers=solo)
    assert (full.status_code, full.json()["error"]["code"]) == (409, "agent_at_capacity")


def test_routing_respects_language_and_skill(client, staff, dialogue):
    dialogue.handoff_on = "人工"
    conv = client.post("/api/v1/conversations", json={"locale": "zh"}).json()
    conv["headers"] = {"Authorization": f"Bearer {conv['token']}"}
    say(client, conv, "人工", "z")
    bo = login(client, "bo@example.com")  # English only
    assert client.post("/api/v1/agent/queue/next", headers=bo).json() is None
    ana = login(client, "ana@example.com")
    assert client.post("/api/v1/agent/queue/next", headers=ana).json()["id"] == conv["id"]
    # Transfer to the billing skill: only agents with that skill may take it.
    moved = client.post(f"/api/v1/agent/conversations/{conv['id']}/transfer", headers=ana,
                        json={"skill": "billing"}).json()
    assert (moved["state"], moved["skill"]) == ("queued", "billing")


def test_transfer_to_another_agent(client, queued, staff):
    ana, bo = login(client, "ana@example.com"), login(client, "bo@example.com")
    client.post(f"/api/v1/agent/conversations/{queued['id']}/claim", headers=ana)
    bo_id = client.get("/api/v1/auth/me", headers=bo).json()["id"]
    moved = client.post(f"/api/v1/agent/conversations/{queued['id']}/transfer", headers=ana,
                        json={"agent_id": bo_id}).json()
    assert (moved["state"], moved["agent_id"]) == ("with_agent", bo_id)
    mine = client.get("/api/v1/agent/conversations", headers=bo).json()
    assert [c["id"] for c in mine] == [queued["id"]]


def test_resolve_then_csat_once(client, queued, staff):
    ana = login(client, "ana@example.com")
    url = f"/api/v1/conversations/{queued['id']}/csat"
    early = client.post(url, headers=queued["headers"], json={"score": 5})
    assert early.json()["error"]["code"] == "not_resolved"
    client.post(f"/api/v1/agent/conversations/{queued['id']}/claim", headers=ana)
    resolved = client.post(f"/api/v1/agent/conversations/{queued['id']}/resolve", headers=ana)
    assert resolved.json()["state"] == "resolved"
    transcript = client.get(f"/api/v1/conversations/{queued['id']}/messages",
                            headers=queued["headers"]).json()
    assert "rate us" in transcript["messages"][-1]["text"]
    assert client.post(url, headers=queued["headers"], json={"score": 6}).status_code == 422
    assert client.post(url, headers=queued["headers"],
                       json={"score": 4, "comment": "quick"}).status_code == 204
    again = client.post(url, headers=queued["headers"], json={"score": 1})
    assert again.json()["error"]["code"] == "already_rated"
    detail = client.get(f"/api/v1/agent/conversations/{queued['id']}", headers=ana).json()
    assert (detail["csat_score"], detail["csat_comment"]) == (4, "quick")


def test_console_stream_sees_the_queue_and_customer_typing(client, conversation, staff,
                                                           dialogue):
    dialogue.handoff_on = "human"
    token = client.post("/api/v1/auth/login", json={"email": "ana@example.com",
                                                    "password": PASSWORD}).json()["token"]
    with client.websocket_connect(f"/api/v1/agent/stream?token={token}") as console:
        assert console.receive_json()["type"] == "hello"
        say(client, conversation, "human", "h")
        events = [console.receive_json() for _ in range(2)]
        assert events[-1] == {"type": "state", "state": "queued", "reason": "customer_request",
                              "conversation_id": conversation["id"]}
        with _widget(client, conversation) as widget:
            widget.send_json({"type": "typing"})
            assert console.receive_json() == {"type": "typing", "role": "customer",
                                              "conversation_id": conversation["id"]}


def test_console_stream_shows_a_chat_only_to_those_who_may_read_it(client, queued, staff):
    ana, bo, root = (login(client, f"{name}@example.com") for name in ("ana", "bo", "root"))
    assert client.post("/api/v1/agent/queue/next", headers=ana).json()["id"] == queued["id"]

    def until_presence(console) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
        events = []
        while (event := console.receive_json())["type"] != "presence":
            events.append(event)
        return events

    def url(headers: dict[str, str]) -> str:
        return f"/api/v1/agent/stream?token={headers['Authorization'].split()[1]}"

    with client.websocket_connect(url(ana)) as holder, \
            client.websocket_connect(url(bo)) as other, \
            client.websocket_connect(url(root)) as admin:
        for console in (holder, other, admin):
            assert console.receive_json()["type"] == "hello"
        say(client, queued, "my order PL-204817 is late", "c1")
        client.put("/api/v1/agent/presence", headers=bo, json={"presence": "away"})
        seen = {name: [e["type"] for e in until_presence(console)]
                for name, console in (("ana", holder), ("bo", other), ("root", admin))}
    # The holder and the admin see the customer's message; another agent does not.
    assert "message" in seen["ana"] and "message" in seen["root"]
    assert "message" not in seen["bo"] and "typing" not in seen["bo"]


def _handed_off(client, say_it: str = "a human please") -> dict[str, Any]:  # type: ignore[no-untyped-def]
    conversation = client.post("/api/v1/conversations", json={"locale": "en"}).json()
    conversation["headers"] = {"Authorization": f"Bearer {conversation['token']}"}
    assert say(client, conversation, say_it, "h")["state"] == "queued"
    return conversation


def _claim(client, headers: dict[str, str], conversation: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    claimed = client.post(f"/api/v1/agent/conversations/{conversation['id']}/claim",
                          headers=headers)
    assert claimed.status_code == 200, claimed.text


def _console(client, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    token = headers["Authorization"].split()[1]
    return client.websocket_connect(f"/api/v1/agent/stream?token={token}")


@contextlib.contextmanager
def _widget(client, conversation: dict[str, Any]):  # type: ignore[no-untyped-def]
    """A customer's stream once it is subscribed: its hello read, every later event arrives."""
    with client.websocket_connect(f"/api/v1/conversations/{conversation['id']}/stream"
                                  f"?token={conversation['token']}") as widget:
        assert widget.receive_json() == {"type": "hello", "conversation_id": conversation["id"]}
        yield widget


def _typing(console, conversation_id: str) -> None:  # type: ignore[no-untyped-def]
    console.send_json({"type": "typing", "conversation_id": conversation_id})


AGENT_TYPING = {"type": "typing", "role": "agent"}

# A console's typing frames are handled in order, so a frame that reaches a widget tells that
# the frames the same console sent before it were decided: the tests below use one as a barrier.


def test_only_the_agent_who_may_reply_makes_a_widget_show_typing(client, queued, staff):
    ana, bo, root = (login(client, f"{name}@example.com") for name in ("ana", "bo", "root"))
    ours, bos, nobodys = queued, _handed_off(client), _handed_off(client)
    _claim(client, ana, ours)
    _claim(client, bo, bos)
    with _console(client, ana) as ana_console, _console(client, bo) as bo_console, \
            _console(client, root) as root_console, _widget(client, ours) as our_widget, \
            _widget(client, bos) as bos_widget, _widget(client, nobodys) as nobodys_widget:
        for console in (ana_console, bo_console, root_console):
            assert console.receive_json()["type"] == "hello"
        # Bo names a chat Ana holds, one that does not exist and one waiting in the queue.
        for conversation_id in (ours["id"], "0" * 32, nobodys["id"], bos["id"]):
            _typing(bo_console, conversation_id)
        assert bos_widget.receive_json() == {**AGENT_TYPING, "name": "bo"}
        # The holder's typing is the first thing Ana's customer hears: Bo's never came.
        _typing(ana_console, ours["id"])
        assert our_widget.receive_json() == {**AGENT_TYPING, "name": "ana"}
        # An admin may reply in a chat that is with an agent, not in one that waits.
        _typing(root_console, nobodys["id"])
        _typing(root_console, ours["id"])
        assert our_widget.receive_json() == {**AGENT_TYPING, "name": "root"}
        _claim(client, ana, nobodys)
        assert nobodys_widget.receive_json()["type"] == "message"  # "ana has joined"


def test_a_flood_of_typing_frames_is_thinned_per_conversation(client, queued, staff,
                                                               settings):
    settings.typing_frames_per_s = 0.2  # one frame per 5 s: the flood below takes far less
    ana = login(client, "ana@example.com")
    other = _handed_off(client)
    _claim(client, ana, queued)
    _claim(client, ana, other)
    with _console(client, ana) as console, _widget(client, queued) as widget, \
            _widget(client, other) as other_widget:
        assert console.receive_json()["type"] == "hello"
        for _ in range(20):
            _typing(console, queued["id"])
        _typing(console, other["id"])  # another conversation has its own allowance
        assert other_widget.receive_json() == {**AGENT_TYPING, "name": "ana"}
        sent = client.post(f"/api/v1/agent/conversations/{queued['id']}/messages", headers=ana,
                           json={"text": "Let me check."})
        assert sent.status_code == 201, sent.text
        events = []
        while (event := widget.receive_json())["type"] != "message":
            events.append(event)
    assert events == [{**AGENT_TYPING, "name": "ana"}]


def test_typing_stops_reaching_the_widget_once_the_chat_is_transferred(client, queued, staff,
                                                                      settings):
    settings.typing_frames_per_s = 1000.0  # no thinning here
    ana, bo = login(client, "ana@example.com"), login(client, "bo@example.com")
    other = _handed_off(client)
    _claim(client, ana, queued)
    _claim(client, ana, other)
    bo_id = client.get("/api/v1/auth/me", headers=bo).json()["id"]
    with _console(client, ana) as console, _widget(client, queued) as widget, \
            _widget(client, other) as other_widget, _console(client, bo) as bo_console:
        assert console.receive_json()["type"] == "hello"
        assert bo_console.receive_json()["type"] == "hello"
        _typing(console, queued["id"])
        assert widget.receive_json() == {**AGENT_TYPING, "name": "ana"}  # and decided: Ana's
        moved = client.post(f"/api/v1/agent/conversations/{queued['id']}/transfer",
                            headers=ana, json={"agent_id": bo_id})
        assert moved.status_code == 200, moved.text
        while not ((event := console.receive_json())["type"] == "state"
                   and event["conversation_id"] == queued["id"]):
            pass  # Ana's console has seen the transfer
        _typing(console, queued["id"])
        _typing(console, other["id"])
        assert other_widget.receive_json() == {**AGENT_TYPING, "name": "ana"}
        _typing(bo_console, queued["id"])
        assert widget.receive_json()["type"] == "state"
        assert widget.receive_json() == {**AGENT_TYPING, "name": "bo"}


def test_console_stream_needs_a_session(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as closed, \
            client.websocket_connect("/api/v1/agent/stream?token=nope") as ws:
        ws.receive_json()
    assert closed.value.code == 4401


def test_console_stream_closes_when_the_session_ends(client, staff, monkeypatch):
    from starlette.websockets import WebSocketDisconnect

    from handoff import router

    monkeypatch.setattr(router, "SESSION_RECHECK_S", 0.05)
    headers = login(client, "ana@example.com", online=False)
    token = headers["Authorization"].removeprefix("Bearer ")
    with pytest.raises(WebSocketDisconnect) as closed, \
            client.websocket_connect(f"/api/v1/agent/stream?token={token}") as console:
        assert console.receive_json()["type"] == "hello"
        console.send_text("not json")  # ignored: the socket stays open
        assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
        console.receive_json()
    assert (closed.value.code, closed.value.reason) == (4401, "invalid_session")


# ---------------------------------------------------------------- SLA

def test_sla_flags():
    from conversations.models import Conversation
    from core.db import utcnow
    from handoff.service import sla

    now = utcnow()
    waiting = Conversation(id="a", state="queued", queued_at=now - timedelta(seconds=300))
    flags = sla(waiting, first_response_s=120, resolution_s=1800, now=now)
    assert flags.first_response_breached and not flags.resolution_breached
    answered = Conversation(id="b", state="with_agent", queued_at=now - timedelta(seconds=300),
                            first_agent_reply_at=now - timedelta(seconds=250))
    assert not sla(answered, first_response_s=120, resolution_s=1800, now=now
                   ).first_response_breached
    assert sla(Conversation(id="c", state="bot"), first_response_s=1, resolution_s=1
               ).first_response_due is None


# ---------------------------------------------------------------- the race

async def _race(database_url: str, agents: int = 20, chats: int = 50) -> dict[str, list[int]]:
    from sqlalchemy import select

    from conversations.models import Conversation
    from conversations.state import request_handoff
    from core import db
    from handoff import service
    from staff.models import Agent
    from staff.passwords import hash_password

    db.upgrade_database(database_url)
    engine = db.create_engine(database_url)
    maker = db.sessionmaker(engine)
    try:
        async with maker() as session:
            digest = hash_password("x" * 12)
            ids = []
            for i in range(agents):
                agent = Agent(email=f"race{i}@example.com", name=f"r{i}", password_hash=digest,
                              presence="online", max_concurrent=chats, languages=["en"])
                session.add(agent)
                await session.flush()
                ids.append(agent.id)
            for _ in range(chats):
                conversation = Conversation(locale="en", state="bot")
                session.add(conversation)
                await session.flush()
                request_handoff(session, conversation=conversation, reason="race",
                                        actor="test")
            await session.commit()

        async def worker(agent_id: int) -> list[str]:
            taken = []
            while True:
                async with maker() as session:
                    conversation = await service.claim_next(session, agent_id=agent_id)
                    if conversation is None:
                        return taken
                    await session.commit()
                    taken.append(conversation.id)

        results = await asyncio.gather(*(worker(i) for i in ids))
        async with maker() as session:
            rows = (await session.execute(select(Conversation.id, Conversation.agent_id,
                                                 Conversation.state))).all()
        claims: dict[str, list[int]] = {}
        for agent_id, taken in zip(ids, results, strict=True):
            for conversation_id in taken:
                claims.setdefault(conversation_id, []).append(agent_id)
        assert all(state == "with_agent" for _, _, state in rows)
        assert {cid: [aid] for cid, aid, _ in rows} == claims
        return claims
    finally:
        await engine.dispose()


def test_twenty_agents_race_for_fifty_chats_sqlite(tmp_path):
    claims = asyncio.run(_race(f"sqlite:///{tmp_path / 'race.db'}"))
    assert len(claims) == 50 and all(len(v) == 1 for v in claims.values())
