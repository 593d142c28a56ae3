"""Every route of the OpenAPI document × every kind of credential: each route admits exactly
the credentials its policy in ``POLICIES`` names and refuses the others with 401/403 and the
code that says why. A route missing from ``POLICIES`` fails, so a new route must declare who
may call it.

"Admitted" means the credential got past authorization: the route may still answer 404, 409
or 422 for the placeholder path and empty body sent here. "Refused" means 401 or 403 with one
of ``REFUSALS``. A 403 about the data (``not_your_conversation``) is not a refusal of the
credential and does not occur here: the agent's requests in this test fail earlier, on
the empty body, or concern nothing another agent holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.config import Settings
from tests.credentials import (
    StaffTokens,
    bearer,
    expired_widget_token,
    forged_staff_token,
    forged_widget_token,
    staff_token,
)

pytestmark = pytest.mark.unit

KINDS = ("none", "widget", "other_widget", "agent", "analyst", "admin", "expired", "forged")

# Who each policy admits.
PUBLIC = frozenset(KINDS)                         # anyone, no credential needed
WIDGET = frozenset({"widget"})                    # the token of this very conversation
STAFF = frozenset({"agent", "analyst", "admin"})  # any staff session
CONSOLE = frozenset({"agent", "admin"})           # the agent console
ADMIN = frozenset({"admin"})
ANALYTICS = frozenset({"analyst", "admin"})
MACHINE = frozenset[str]()  # this machine or PARLEY_METRICS_TOKEN only: no user credential

C = "/api/v1/conversations/{conversation_id}"
A = "/api/v1/agent/conversations/{conversation_id}"
KB = "/api/v1/kb"
INSIGHTS = "/api/v1/admin/analytics"
POLICIES: dict[tuple[str, str], frozenset[str]] = {
    # The public (widget) API
    ("POST", "/api/v1/conversations"): PUBLIC,
    ("POST", f"{C}/messages"): WIDGET,
    ("GET", f"{C}/messages"): WIDGET,
    ("GET", f"{C}/queue"): WIDGET,
    ("POST", f"{C}/csat"): WIDGET,
    ("GET", "/api/v1/widget/config"): PUBLIC,
    # Staff sessions
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): STAFF,
    ("GET", "/api/v1/auth/me"): STAFF,
    ("GET", "/api/v1/admin/agents"): ADMIN,
    ("POST", "/api/v1/admin/agents"): ADMIN,
    ("GET", "/api/v1/agents"): CONSOLE,
    # The agent console
    ("GET", "/api/v1/agent/queue"): CONSOLE,
    ("GET", "/api/v1/agent/conversations"): CONSOLE,
    ("POST", "/api/v1/agent/queue/next"): CONSOLE,
    ("POST", f"{A}/claim"): CONSOLE,
    ("GET", A): CONSOLE,
    ("POST", f"{A}/messages"): CONSOLE,
    ("POST", f"{A}/notes"): CONSOLE,
    ("POST", f"{A}/transfer"): CONSOLE,
    ("POST", f"{A}/resolve"): CONSOLE,
    ("POST", f"{A}/handback"): CONSOLE,
    ("PUT", "/api/v1/agent/presence"): CONSOLE,
    # Analytics
    ("GET", f"{INSIGHTS}/summary"): ANALYTICS,
    ("GET", f"{INSIGHTS}/timeseries"): ANALYTICS,
    ("GET", f"{INSIGHTS}/export.csv"): ANALYTICS,
    ("GET", f"{INSIGHTS}/knowledge-gaps"): ANALYTICS,
    ("GET", f"{INSIGHTS}/knowledge-gaps/{{cluster_id}}/draft"): ANALYTICS,
    ("GET", f"{INSIGHTS}/answers"): ANALYTICS,
    ("GET", f"{INSIGHTS}/articles"): ANALYTICS,
    ("GET", f"{INSIGHTS}/gate-calibration"): ANALYTICS,
    # The knowledge editor
    ("GET", f"{KB}/articles"): ADMIN,
    ("POST", f"{KB}/articles"): ADMIN,
    ("GET", f"{KB}/articles/{{article_id}}"): ADMIN,
    ("PUT", f"{KB}/articles/{{article_id}}"): ADMIN,
    ("DELETE", f"{KB}/articles/{{article_id}}"): ADMIN,
    ("GET", f"{KB}/articles/{{article_id}}/versions/{{version}}"): ADMIN,
    ("GET", f"{KB}/articles/{{article_id}}/diff"): ADMIN,
    ("POST", f"{KB}/articles/{{article_id}}/restore"): ADMIN,
    ("POST", f"{KB}/articles/{{article_id}}/publish"): ADMIN,
    ("POST", f"{KB}/articles/{{article_id}}/check"): ADMIN,
    ("GET", f"{KB}/tasks/{{task_id}}"): ADMIN,
    ("POST", f"{KB}/preview"): ADMIN,
    ("GET", f"{KB}/audit"): ADMIN,
    ("POST", f"{KB}/ask"): ADMIN,
    ("GET", f"{KB}/entities/{{label}}"): ADMIN,
    ("GET", f"{KB}/entities/{{label}}/{{key}}"): ADMIN,
    ("PUT", f"{KB}/entities/{{label}}/{{key}}"): ADMIN,
    ("DELETE", f"{KB}/entities/{{label}}/{{key}}"): ADMIN,
    # Operations
    ("GET", "/api/v1/admin/tasks/dead"): ADMIN,
    ("POST", "/api/v1/admin/tasks/dead/{letter_id}/retry"): ADMIN,
    ("GET", "/api/v1/admin/nlu"): ADMIN,
    ("POST", "/api/v1/admin/nlu/activate"): ADMIN,
    ("POST", "/api/v1/admin/nlu/rollback"): ADMIN,
    ("PUT", "/api/v1/admin/nlu/canary"): ADMIN,
    ("DELETE", "/api/v1/admin/nlu/canary"): ADMIN,
    # One person's data
    ("POST", "/api/v1/admin/customers/export"): ADMIN,
    ("POST", "/api/v1/admin/customers/delete"): ADMIN,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): MACHINE,
}

# The codes that refuse a credential (as opposed to the request's content).
REFUSALS = {
    401: {"missing_token", "invalid_token", "token_expired", "invalid_session",
          "session_expired"},
    403: {"token_scope", "admin_only", "console_only", "analytics_only", "metrics_forbidden"},
}
# For the expired and forged kinds: the code each audience must give.
EXPECTED_CODE = {("expired", "widget"): "token_expired", ("forged", "widget"): "invalid_token",
                 ("expired", "staff"): "session_expired", ("forged", "staff"): "invalid_session"}


def _operations(client: TestClient) -> set[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = client.get("/openapi.json").json()["paths"]
    return {(method.upper(), path) for path, operations in paths.items()
            for method in operations}


@dataclass
class Credentials:
    """Authorization headers by kind; the expired and forged kinds depend on the audience."""

    settings: Settings
    conversation_id: str
    widget_token: str
    other_widget_token: str
    staff: StaffTokens

    def headers(self, kind: str, *, widget_route: bool) -> dict[str, str]:
        if kind in STAFF:  # a fresh session per request: logout ends the one it is called with
            return bearer(staff_token(self.settings, self.staff.ids[kind]))
        if kind == "widget":
            return bearer(self.widget_token)
        if kind == "other_widget":
            return bearer(self.other_widget_token)
        if kind == "expired":
            return bearer(expired_widget_token(self.settings, self.conversation_id)
                          if widget_route else
                          staff_token(self.settings, self.staff.ids["admin"], ttl_s=-60))
        if kind == "forged":
            return bearer(forged_widget_token(self.conversation_id) if widget_route
                          else forged_staff_token())
        return {}


@pytest.fixture
def credentials(client: TestClient, settings: Settings,
                conversation: dict[str, Any]) -> Credentials:
    other = client.post("/api/v1/conversations", json={"locale": "en"})
    assert other.status_code == 201, other.text
    return Credentials(settings=settings, conversation_id=conversation["id"],
                       widget_token=conversation["token"], other_widget_token=other.json()["token"],
                       staff=StaffTokens.create(settings))


def _url(path: str, conversation_id: str) -> str:
    """``path`` with placeholders that pass validation: the conversation of the widget
    token, and ids that exist nowhere."""
    values = {"conversation_id": conversation_id, "article_id": "no-such-article",
              "version": "1", "task_id": "no-such-task", "label": "Product",
              "key": "no-such-key", "cluster_id": "1", "letter_id": "no-such-letter"}
    for name, value in values.items():
        path = path.replace(f"{{{name}}}", value)
    assert "{" not in path, f"give {path} a placeholder value in _url"
    return path


def test_every_route_in_the_openapi_document_declares_its_policy(client: TestClient) -> None:
    operations = _operations(client)
    missing = sorted(operations - POLICIES.keys())
    stale = sorted(POLICIES.keys() - operations)
    assert not missing, f"routes without a policy in POLICIES: {missing}"
    assert not stale, f"policies for routes that no longer exist: {stale}"


def test_each_route_admits_exactly_the_credentials_its_policy_names(
        client: TestClient, credentials: Credentials) -> None:
    wrong: list[str] = []
    for method, path in sorted(_operations(client) & POLICIES.keys()):
        widget_route = POLICIES[(method, path)] == WIDGET
        url = _url(path, credentials.conversation_id)
        for kind in KINDS:
            response = client.request(
                method, url, headers=credentials.headers(kind, widget_route=widget_route),
                json={} if method in {"POST", "PUT"} else None)
            body = (response.json() if response.content and "json" in
                    response.headers.get("content-type", "") else {})
            code = (body.get("error") or {}).get("code") if isinstance(body, dict) else None
            refused = code in REFUSALS.get(response.status_code, ())
            admitted = kind in POLICIES[(method, path)]
            expected = EXPECTED_CODE.get((kind, "widget" if widget_route else "staff"))
            if response.status_code >= 500 and path != "/readyz":  # 503 while Rasa is down
                wrong.append(f"{method} {path} as {kind}: {response.status_code} {code}")
            elif admitted == refused:
                wrong.append(f"{method} {path} as {kind}: "
                             f"{'refused' if refused else 'admitted'} "
                             f"({response.status_code} {code}), the policy says "
                             f"{'admit' if admitted else 'refuse'}")
            elif refused and expected and POLICIES[(method, path)] not in (PUBLIC, MACHINE) \
                    and code != expected:
                wrong.append(f"{method} {path} as {kind}: {code}, expected {expected}")
    assert not wrong, "\n".join(wrong)


def test_every_refusal_a_policy_implies_is_documented(client: TestClient) -> None:
    """A route that refuses some credentials says so in the OpenAPI document (401, 403)."""
    paths = client.get("/openapi.json").json()["paths"]
    undocumented = []
    for (method, path), admits in POLICIES.items():
        if admits == PUBLIC or (method, path) not in _operations(client):
            continue
        declared = paths[path][method.lower()]["responses"]
        undocumented += [f"{method} {path}: {status}" for status in ("401", "403")
                         if status not in declared]
    assert not undocumented, undocumented


def test_a_body_that_is_not_utf8_is_a_400_with_its_code(client: TestClient) -> None:
    response = client.post("/api/v1/auth/login", content=b'{"email": "\xff", "password": "x"}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    # FastAPI's "There was an error parsing the body", which used to be ``http_error``
    assert response.json()["error"]["code"] == "invalid_body"
