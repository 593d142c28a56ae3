"""Hostile input gets a 4xx with a stable code, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.unit


def test_a_lone_surrogate_in_a_message_is_refused(client: TestClient,
                                                  conversation: dict[str, Any]) -> None:
    body = '{"text": "hello \\ud800 there", "client_message_id": "s1"}'
    response = client.post(f"/api/v1/conversations/{conversation['id']}/messages",
                           headers={**conversation["headers"],
                                    "Content-Type": "application/json"}, content=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in {"validation_error", "invalid_text"}
    transcript = client.get(f"/api/v1/conversations/{conversation['id']}/messages",
                            headers=conversation["headers"]).json()
    assert transcript["messages"] == []


@pytest.mark.parametrize("path", ["/api/v1/conversations/ä/messages",
                                  "/api/v1/conversations/%E7%AD%BE/messages"])
def test_a_non_ascii_conversation_id_is_a_4xx(client: TestClient,
                                              conversation: dict[str, Any], path: str) -> None:
    response = client.get(path, headers=conversation["headers"])
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"], response.text  # the API's error, not a crash page


def test_a_non_ascii_token_is_a_4xx(client: TestClient, conversation: dict[str, Any]) -> None:
    response = client.get(f"/api/v1/conversations/{conversation['id']}/messages",
                          headers={"Authorization": "Bearer v1.ä.1.签".encode()})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_token"


def test_an_integer_beyond_64_bits_is_a_4xx(settings, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    from tests.unit.test_handoff import PASSWORD, make_agent

    make_agent(settings, "boss@example.com", role="admin")
    token = client.post("/api/v1/auth/login", json={"email": "boss@example.com",
                                                     "password": PASSWORD}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    # An article that exists: the version number, not the article id, must be what is refused.
    created = client.post("/api/v1/kb/articles", headers=headers,
                          json={"id": "a", "title": "A", "tags": [], "lang": "en",
                                "body": "Returns are free within 30 days."})
    assert created.status_code == 201, created.text
    huge = 2 ** 64
    for path in (f"/api/v1/kb/articles/a/versions/{huge}",
                 f"/api/v1/kb/articles/a/diff?from={huge}&to=1"):
        response = client.get(path, headers=headers)
        assert 400 <= response.status_code < 500, (path, response.text)
        assert response.json()["error"]["code"] == "number_out_of_range", (path, response.text)
