"""``parley_http_requests_total``: every HTTP request counted by method, route template (never
the ids in the path) and status, including refusals and unknown paths."""

from __future__ import annotations

import re
import uuid

import pytest
from pydantic import SecretStr

pytestmark = pytest.mark.unit


def _count(client, method: str, route: str, status: int) -> float:
    text = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).text
    pattern = (rf'^parley_http_requests_total\{{method="{method}",route="{re.escape(route)}",'
               rf'status="{status}"\}} (\S+)$')
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


def test_requests_are_counted_by_route_template_and_status(client, conversation):
    client.app.state.settings.metrics_token = SecretStr("scrape-me")
    route = "/api/v1/conversations/{conversation_id}/messages"
    before_ok = _count(client, "POST", route, 200)
    before_refused = _count(client, "POST", route, 401)
    for _ in range(2):
        sent = client.post(f"/api/v1/conversations/{conversation['id']}/messages",
                           json={"text": "hi", "client_message_id": uuid.uuid4().hex},
                           headers=conversation["headers"])
        assert sent.status_code == 200
    refused = client.post(f"/api/v1/conversations/{conversation['id']}/messages",
                          json={"text": "hi", "client_message_id": "x"})
    assert refused.status_code == 401
    assert client.get("/no/such/page").status_code == 404

    assert _count(client, "POST", route, 200) == before_ok + 2
    assert _count(client, "POST", route, 401) == before_refused + 1
    assert _count(client, "GET", "unmatched", 404) >= 1
    metrics = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).text
    assert conversation["id"] not in metrics  # ids never become label values
