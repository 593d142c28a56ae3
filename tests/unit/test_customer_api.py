"""The admin API for one person's data (``POST /api/v1/admin/customers/export|delete``): the
same service as ``parley customer``, for admins only, through the real app and real logins.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import SecretStr

from core.config import Settings
from core.customers import CustomerIdentity, mint_customer_token
from tests.unit.test_data_care import (
    KEY,
    rows,
    say,
    start,
    three_people,
    tracker_events,
    transcript,
)
from tests.unit.test_handoff import login, make_agent

pytestmark = pytest.mark.unit
EXPORT = "/api/v1/admin/customers/export"
DELETE = "/api/v1/admin/customers/delete"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"customer_signing_key": SecretStr(KEY)})


@pytest.fixture
def admin(client: Any, settings: Settings) -> dict[str, str]:
    make_agent(settings, "root@example.com", role="admin")
    return login(client, "root@example.com", online=False)


def error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_export_is_a_download_of_the_persons_data_and_no_one_elses(client, admin):  # type: ignore[no-untyped-def]
    verified = start(client, email="li.wei@example.com")
    say(client, verified, "is my kettle under warranty?")
    anonymous = start(client)
    say(client, anonymous, "my email is Li.Wei@example.com")
    someone_else = start(client)
    say(client, someone_else, "I am anna.lee@example.com, where is my blender?")

    response = client.post(EXPORT, headers=admin, json={"email": " LI.WEI@example.com "})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=\"customer-export-")
    assert "li.wei" not in disposition.lower()  # no personal data in a file name
    assert response.headers["cache-control"] == "no-store"
    assert "anna.lee" not in response.text and "blender" not in response.text
    exported = response.json()
    assert exported["customer"] == {"email": "li.wei@example.com"}
    conversations = {c["id"]: c for c in exported["conversations"]}
    assert set(conversations) == {verified["id"], anonymous["id"]}
    assert conversations[verified["id"]]["matched_by"] == ["identity"]
    assert conversations[verified["id"]]["verified_identity"] == {"email": "li.wei@example.com"}
    assert "is my kettle under warranty?" in [
        m["text"] for m in conversations[verified["id"]]["messages"]]
    assert conversations[anonymous["id"]]["matched_by"] == ["message"]


def test_export_by_customer_id_and_the_errors_it_names(client, admin):  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"locale": "en", "customer_token": mint_customer_token(
        CustomerIdentity(customer_id="C-1001"), key=KEY)}
    mine = client.post("/api/v1/conversations", json=body).json()
    start(client, email="li.wei@example.com")

    response = client.post(EXPORT, headers=admin, json={"customer_id": "C-1001"})

    assert response.status_code == 200, response.text
    assert [c["id"] for c in response.json()["conversations"]] == [mine["id"]]
    assert error(client.post(EXPORT, headers=admin, json={"customer_id": "C-404"})) == \
        (404, "customer_not_found")
    for named in ({}, {"email": "a@b.co", "customer_id": "C-1"}, {"email": "not-an-address"},
                  {"email": "   "}):
        assert error(client.post(EXPORT, headers=admin, json=named)) == \
            (422, "customer_not_named"), named
    assert error(client.post(EXPORT, headers=admin, json={"email": 5})) == \
        (422, "validation_error")


def test_delete_needs_confirmation_then_removes_only_that_person_once(
        client, settings, admin):  # type: ignore[no-untyped-def]
    verified, anonymous, someone_else, path = three_people(client, settings)

    for unconfirmed in ({"email": "li.wei@example.com"},
                        {"email": "li.wei@example.com", "confirm": False}):
        refused = client.post(DELETE, headers=admin, json=unconfirmed)
        assert error(refused) == (422, "confirmation_required")
        assert refused.json()["error"]["details"] == {"conversations": 2}
    assert transcript(client, verified).status_code == 200
    assert transcript(client, anonymous).status_code == 200

    response = client.post(DELETE, headers=admin,
                           json={"email": "li.wei@example.com", "confirm": True})

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["conversations"] == result["deleted"]["conversations"] == 2
    assert result["deleted"]["messages"] >= 4  # each customer message and its reply
    assert result["deleted"]["tracker_events"] == 1
    for gone in (verified, anonymous):
        assert transcript(client, gone).status_code == 404
        assert rows(settings, "outbox_events", "conversation_id", gone["id"]) == 0
    assert tracker_events(path, verified["id"]) == 0
    assert transcript(client, someone_else).status_code == 200
    assert tracker_events(path, someone_else["id"]) == 1

    again = client.post(DELETE, headers=admin,
                        json={"email": "li.wei@example.com", "confirm": True})
    assert again.status_code == 200, again.text
    assert again.json() == {"conversations": 0,
                            "deleted": {"conversations": 0, "tracker_events": 0}}
    nobody = client.post(DELETE, headers=admin, json={"customer_id": "C-404"})
    assert (error(nobody), nobody.json()["error"]["details"]) == \
        ((422, "confirmation_required"), {"conversations": 0})


def test_only_admins_may_export_or_delete(client, settings, conversation):  # type: ignore[no-untyped-def]
    verified = start(client, email="li.wei@example.com")
    say(client, verified, "hello")
    make_agent(settings, "ana@example.com")
    make_agent(settings, "ada@example.com", role="analyst")
    agent = login(client, "ana@example.com", online=False)
    analyst = login(client, "ada@example.com", online=False)
    body = {"email": "li.wei@example.com", "confirm": True}

    for url in (EXPORT, DELETE):
        assert error(client.post(url, json=body)) == (401, "missing_token")
        assert error(client.post(url, headers=conversation["headers"], json=body))[0] == 401
        for staff in (agent, analyst):
            assert error(client.post(url, headers=staff, json=body)) == (403, "admin_only")
    assert transcript(client, verified).status_code == 200


def test_the_log_names_the_admin_and_the_counts_never_the_person(
        client, admin, caplog):  # type: ignore[no-untyped-def]
    verified = start(client, email="li.wei@example.com")
    say(client, verified, "my parcel PL-310552 is late")
    body = {"email": "li.wei@example.com"}

    with caplog.at_level(logging.INFO, logger="conversations.privacy_router"):
        assert client.post(EXPORT, headers=admin, json=body).status_code == 200
        deleted = client.post(DELETE, headers=admin, json={**body, "confirm": True}).json()

    me = client.get("/api/v1/auth/me", headers=admin).json()
    removed = sum(n for table, n in deleted["deleted"].items() if table != "tracker_events")
    assert [r.getMessage() for r in caplog.records
            if r.name == "conversations.privacy_router"] == [
        f"admin {me['id']} exported a customer's data (named by email): 1 conversation(s)",
        f"admin {me['id']} deleted a customer's data (named by email): 1 conversation(s), "
        f"{removed} row(s), 0 tracker event(s)"]
    logged = caplog.text.lower()
    assert "li.wei" not in logged and "pl-310552" not in logged
