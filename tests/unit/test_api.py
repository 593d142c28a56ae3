"""The public conversation API: validation, auth scoping, idempotency, no lost messages."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from core.deps import SessionDep

pytestmark = pytest.mark.unit


def post(client, conversation, text, cid="m1", headers=None):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/conversations/{conversation['id']}/messages",
                       headers=headers if headers is not None else conversation["headers"],
                       json={"text": text, "client_message_id": cid})


def test_a_turn_stores_the_message_and_returns_the_reply(client, conversation, dialogue):
    response = post(client, conversation, "hello")
    assert response.status_code == 200
    body = response.json()
    assert [m["role"] for m in body["messages"]] == ["customer", "bot"]
    assert body["messages"][1]["text"] == "echo: hello"
    assert body["state"] == "bot"
    transcript = client.get(f"/api/v1/conversations/{conversation['id']}/messages",
                            headers=conversation["headers"]).json()
    assert [m["text"] for m in transcript["messages"]] == ["hello", "echo: hello"]


def test_a_retry_with_the_same_client_message_id_returns_the_same_reply(client, conversation,
                                                                        dialogue):
    first = post(client, conversation, "where is my order", cid="retry-1").json()
    second = post(client, conversation, "where is my order", cid="retry-1").json()
    assert second["messages"] == first["messages"]
    assert len(dialogue.calls) == 1
    transcript = client.get(f"/api/v1/conversations/{conversation['id']}/messages",
                            headers=conversation["headers"]).json()
    assert len(transcript["messages"]) == 2


def test_reusing_a_client_message_id_for_other_text_is_a_conflict(client, conversation):
    assert post(client, conversation, "one", cid="same").status_code == 200
    response = post(client, conversation, "two", cid="same")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "client_message_id_reused"


def test_when_rasa_is_down_the_message_is_kept_and_answered_once_on_retry(client, conversation,
                                                                         dialogue):
    dialogue.fail = True
    response = post(client, conversation, "are you there?", cid="down-1")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dialogue_unavailable"
    transcript = client.get(f"/api/v1/conversations/{conversation['id']}/messages",
                            headers=conversation["headers"]).json()
    assert [m["text"] for m in transcript["messages"]] == ["are you there?"]

    dialogue.fail = False
    retried = post(client, conversation, "are you there?", cid="down-1").json()
    assert [m["text"] for m in retried["messages"]] == ["are you there?", "echo: are you there?"]
    assert len(dialogue.calls) == 1


def test_pending_messages_are_finished_at_start_up(settings, dialogue):
    from fastapi.testclient import TestClient

    from web.app import create_app

    dialogue.fail = True
    with TestClient(create_app(settings, dialogue=dialogue)) as client:
        conv = client.post("/api/v1/conversations", json={}).json()
        headers = {"Authorization": f"Bearer {conv['token']}"}
        assert client.post(f"/api/v1/conversations/{conv['id']}/messages", headers=headers,
                           json={"text": "lost?", "client_message_id": "c1"}).status_code == 503
    dialogue.fail = False  # "Rasa is back" and the API restarts
    with TestClient(create_app(settings, dialogue=dialogue)) as client:
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            messages = client.get(f"/api/v1/conversations/{conv['id']}/messages",
                                  headers=headers).json()["messages"]
            if len(messages) == 2:
                break
            time.sleep(0.05)
    assert [m["text"] for m in messages] == ["lost?", "echo: lost?"]
    assert len(dialogue.calls) == 1


@pytest.mark.parametrize(
    ("text", "code"),
    [("", "text_empty"), ("   \n\t ", "text_empty"), ("x" * 4001, "text_too_long")],
)
def test_bad_text_is_refused_and_never_reaches_rasa(client, conversation, dialogue, text, code):
    response = post(client, conversation, text)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    assert dialogue.calls == []


def test_text_at_the_limit_is_accepted(client, conversation):
    assert post(client, conversation, "y" * 4000).status_code == 200


def test_invalid_json_is_a_400(client, conversation, dialogue):
    response = client.post(f"/api/v1/conversations/{conversation['id']}/messages",
                           headers={**conversation["headers"], "Content-Type": "application/json"},
                           content=b'{"text": "hi", ')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert dialogue.calls == []


def test_missing_fields_and_unknown_fields_are_422(client, conversation):
    url = f"/api/v1/conversations/{conversation['id']}/messages"
    missing = client.post(url, headers=conversation["headers"], json={"text": "hi"})
    extra = client.post(url, headers=conversation["headers"],
                        json={"text": "hi", "client_message_id": "a", "role": "agent"})
    bad_id = client.post(url, headers=conversation["headers"],
                         json={"text": "hi", "client_message_id": "<script>"})
    for response in (missing, extra, bad_id):
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "validation_error"


def test_oversized_body_is_413(client, conversation, dialogue):
    response = post(client, conversation, "z" * 20_000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert dialogue.calls == []


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [({}, 401, "missing_token"),
     ({"Authorization": "Bearer nonsense"}, 401, "invalid_token"),
     ({"Authorization": "Basic abc"}, 401, "missing_token")],
)
def test_a_token_is_required(client, conversation, dialogue, headers, status, code):
    response = post(client, conversation, "hi", headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    read = client.get(f"/api/v1/conversations/{conversation['id']}/messages", headers=headers)
    assert read.status_code == status
    assert dialogue.calls == []


def test_a_widget_token_only_reaches_its_own_conversation(client, conversation, dialogue):
    other = client.post("/api/v1/conversations", json={}).json()
    post(client, conversation, "my secret order PL-204817")
    response = client.get(f"/api/v1/conversations/{other['id']}/messages",
                          headers=conversation["headers"])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "token_scope"
    mine = client.get(f"/api/v1/conversations/{other['id']}/messages",
                      headers={"Authorization": f"Bearer {other['token']}"}).json()
    assert mine["messages"] == []


def test_a_tampered_token_is_refused(client, conversation):
    other = client.post("/api/v1/conversations", json={}).json()
    forged = conversation["token"].replace(conversation["id"], other["id"])
    response = client.get(f"/api/v1/conversations/{other['id']}/messages",
                          headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_unknown_conversation_is_404(client, settings):
    from core.security import mint_conversation_token

    ghost = "0" * 32
    token = mint_conversation_token(ghost, key=settings.secret_key.get_secret_value())
    response = client.post(f"/api/v1/conversations/{ghost}/messages",
                           headers={"Authorization": f"Bearer {token}"},
                           json={"text": "hi", "client_message_id": "x"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "conversation_not_found"


def test_unknown_locale_is_422(client):
    response = client.post("/api/v1/conversations", json={"locale": "xx"})
    assert response.status_code == 422


def test_handoff_payload_queues_the_conversation_and_pauses_the_bot(client, conversation,
                                                                   dialogue):
    dialogue.handoff_on = "human please"
    body = post(client, conversation, "human please", cid="h1").json()
    assert body["state"] == "queued"
    assert [m["text"] for m in body["messages"]] == ["human please", "echo: human please"]
    later = post(client, conversation, "hello?", cid="h2").json()
    assert [m["role"] for m in later["messages"]] == ["customer"]  # no bot reply while queued
    assert len(dialogue.calls) == 1


def stream_url(conversation):  # type: ignore[no-untyped-def]
    return f"/api/v1/conversations/{conversation['id']}/stream?token={conversation['token']}"


def test_stream_says_hello_once_subscribed_and_misses_nothing_after(client, conversation):
    hub = client.app.state.hub  # type: ignore[attr-defined]
    with client.websocket_connect(stream_url(conversation)) as ws:
        assert ws.receive_json() == {"type": "hello", "conversation_id": conversation["id"]}
        # Published the moment the hello is read, in the server's loop: it still arrives.
        event = {"type": "state", "state": "bot"}
        client.portal.call(hub.publish, conversation["id"], event)  # type: ignore[union-attr]
        assert ws.receive_json() == event


def test_stream_delivers_messages_and_state(client, conversation, dialogue):
    dialogue.handoff_on = "agent"
    with client.websocket_connect(stream_url(conversation)) as ws:
        assert ws.receive_json()["type"] == "hello"
        post(client, conversation, "agent", cid="s1")
        events = [ws.receive_json() for _ in range(3)]
    assert [e["type"] for e in events] == ["message", "message", "state"]
    assert events[0]["message"]["role"] == "customer"
    assert events[1]["message"]["text"] == "echo: agent"
    assert events[2]["state"] == "queued"


def test_stream_refuses_a_wrong_token(client, conversation):
    from starlette.websockets import WebSocketDisconnect

    other = client.post("/api/v1/conversations", json={}).json()
    url = f"/api/v1/conversations/{other['id']}/stream?token={conversation['token']}"
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(url) as ws:
        ws.receive_json()
    assert closed.value.code == 4403


def test_stream_ignores_frames_that_are_not_json_objects(client, conversation, dialogue):
    with client.websocket_connect(stream_url(conversation)) as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_text("not json")
        ws.send_json(["typing"])
        ws.send_bytes(b"\x00")
        post(client, conversation, "still here?", cid="f1")
        assert ws.receive_json()["message"]["text"] == "still here?"


def test_message_data_reads_rows_from_before_the_schema_and_keeps_unknown_keys(
        client, conversation, settings):
    import json
    import sqlite3

    post(client, conversation, "hello", cid="d1")
    path = settings.database_url.split("///", 1)[1]
    with sqlite3.connect(path) as db:
        # The shape _store_turn wrote before MessageData, plus a key no code knows.
        db.execute("UPDATE messages SET data = ? WHERE role = 'customer'", (json.dumps(
            {"intent": "test", "confidence": None, "entities": [], "slots": {},
             "active_loop": None, "abstained": False, "abstain_reason": None,
             "from_the_future": [1]}),))
        db.execute("UPDATE messages SET data = ? WHERE role = 'bot'", (json.dumps(
            {"buttons": [{"title": "Yes", "payload": "/affirm"}],
             "citations": [{"source_id": "kb:1", "title": "Returns", "snippet": "30 days"}]}),))
    transcript = client.get(f"/api/v1/conversations/{conversation['id']}/messages",
                            headers=conversation["headers"]).json()["messages"]
    assert transcript[1]["buttons"] == [{"title": "Yes", "payload": "/affirm"}]
    assert transcript[1]["citations"][0]["source_id"] == "kb:1"

    post(client, conversation, "again", cid="d2")  # reads the earlier turn's data as history
    with sqlite3.connect(path) as db:
        rows = [json.loads(d) for (d,) in db.execute(
            "SELECT data FROM messages WHERE role = 'customer' ORDER BY seq")]
    assert rows[0]["from_the_future"] == [1] and rows[0]["intent"] == "test"
    assert rows[1]["intent"] == "test" and rows[1]["confidence"] == 1.0


def test_session_dep_commits_before_answering_and_rolls_back_on_errors(settings):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from core import db
    from core.errors import Conflict
    from core.handlers import install_error_handlers
    from staff.models import Agent

    db.upgrade_database(settings.database_url)
    app = FastAPI()
    install_error_handlers(app)
    engine = db.create_engine(settings.database_url)
    app.state.maker = db.sessionmaker(engine)

    def agent(email: str) -> Agent:
        return Agent(email=email, name="x", password_hash="x")

    @app.post("/twice")
    async def twice(session: SessionDep) -> dict[str, bool]:
        session.add_all([agent("same@example.com"), agent("same@example.com")])
        return {"stored": True}  # the unique email fails only at the commit

    @app.post("/refused")
    async def refused(session: SessionDep) -> None:
        session.add(agent("refused@example.com"))
        await session.flush()
        raise Conflict("no", code="refused")

    @app.get("/count")
    async def count(session: SessionDep) -> int:
        return (await session.execute(select(func.count()).select_from(Agent))).scalar_one()

    with TestClient(app, raise_server_exceptions=False) as test_client:
        assert test_client.post("/twice").status_code == 500  # not a 200 for a lost write
        assert test_client.post("/refused").status_code == 409
        assert test_client.get("/count").json() == 0


def test_openapi_documents_the_public_contract(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/conversations", "/api/v1/conversations/{conversation_id}/messages"} <= set(
        spec["paths"])
    post_responses = spec["paths"]["/api/v1/conversations/{conversation_id}/messages"]["post"][
        "responses"]
    assert {"200", "401", "403", "404", "413", "422"} <= set(post_responses)


def test_healthz_and_metrics(client, conversation):
    post(client, conversation, "count me")
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/metrics").status_code == 403  # the test client is not on loopback
    client.app.state.settings.metrics_token = SecretStr("scrape-me")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    metrics = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).text
    assert "parley_turn_seconds" in metrics
    assert 'parley_messages_total{role="customer"}' in metrics


def test_readyz_reports_each_dependency(client):
    response = client.get("/readyz")
    checks = response.json()["checks"]
    assert set(checks) == {"database", "rasa", "nlu", "action_server"}
    assert checks["database"] == "ok"
    assert response.status_code == 503  # no NLU service or action server in a unit test
