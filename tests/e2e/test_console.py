"""The agent console in a real browser (Debian's Chromium) against the real stack.

The customer side is driven through the public HTTP API (and its WebSocket), the agent side
through ``/console``. Run with ``pytest -m e2e tests/e2e/test_console.py``. Set
``PARLEY_E2E_SCREENSHOTS=/some/dir`` to keep screenshots of the console.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import PASSWORD, make_staff, screenshot
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

playwright_sync = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import (  # noqa: E402 - after the importorskip above
    BrowserContext,
    Locator,
    Page,
    Route,
    WebSocketRoute,
    expect,
)


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        yield client


@dataclass
class Customer:
    """One customer conversation, driven through the public API."""

    client: httpx.Client
    id: str
    token: str
    said: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def say(self, text: str) -> dict[str, Any]:
        response = self.client.post(f"/api/v1/conversations/{self.id}/messages",
                                    headers=self.headers,
                                    json={"text": text, "client_message_id": uuid.uuid4().hex})
        assert response.status_code == 200, response.text
        return response.json()

    def transcript(self) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/conversations/{self.id}/messages",
                                   headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()


def new_customer(api: httpx.Client) -> Customer:
    created = api.post("/api/v1/conversations", json={"locale": "en"})
    assert created.status_code == 201, created.text
    body = created.json()
    return Customer(api, body["id"], body["token"])


def queued_customer(api: httpx.Client) -> Customer:
    customer = new_customer(api)
    assert re.search(r"order number", customer.say("where is my order?")["messages"][-1]["text"],
                     re.I)
    customer.say("PL-204817")
    customer.say("anna.lee@example.com")  # the order's email: the bot shows its status
    assert customer.say("I want to talk to a human")["state"] == "queued"
    return customer


def make_agent(stack: Stack, name: str) -> tuple[str, int]:
    """A new agent who speaks English and Chinese; returns (email, id)."""
    return make_staff(stack, name, languages=("en", "zh"))



def sign_in(page: Page, stack: Stack, email: str) -> None:
    page.goto(stack.api_url + "/console")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("agent-name")).not_to_be_empty()
    # The live stream is up before anything happens on the customer side.
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "open")
    presence = page.get_by_test_id("presence")
    expect(presence).to_have_attribute("data-presence", "offline")
    presence.click()
    expect(presence).to_have_attribute("data-presence", "online")
    expect(presence).to_have_attribute("aria-checked", "true")


def queue_item(page: Page, customer: Customer) -> Locator:
    return page.locator(f'[data-testid="queue-item"][data-conversation-id="{customer.id}"]')


def bubbles(page: Page, role: str | None = None) -> Locator:
    role_filter = f'[data-role="{role}"]' if role else ""
    return page.locator(f'[data-testid="conversation-message"]{role_filter} '
                        '[data-testid="message-text"]')


@contextlib.contextmanager
def customer_events(stack: Stack, customer: Customer):  # type: ignore[no-untyped-def]
    """The customer's stream once it is subscribed (its hello read)."""
    from websockets.sync.client import connect

    url = (stack.api_url.replace("http", "ws", 1)
           + f"/api/v1/conversations/{customer.id}/stream?token={customer.token}")
    with connect(url, open_timeout=10) as ws:
        wait_for_event(ws, lambda e: e == {"type": "hello", "conversation_id": customer.id})
        yield ws


def wait_for_event(ws, predicate, timeout_s: float = 10) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            break
        if predicate(event):
            return event
    raise AssertionError("the customer's stream never got the expected event")


def test_take_reply_note_and_hand_back(stack: Stack, context: BrowserContext,
                                       api: httpx.Client) -> None:
    email, _ = make_agent(stack, "Ana Lopez")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, stack, email)

    customer = queued_customer(api)
    item = queue_item(page, customer)
    expect(item).to_be_visible(timeout=10_000)  # pushed by the live stream, not by polling
    expect(item).to_contain_text("Asked for a person")
    expect(item).to_contain_text("I want to talk to a human")
    wait = item.get_by_test_id("wait")
    expect(wait).to_have_text(re.compile(r"^\d+:\d\d$"))
    expect(wait).not_to_have_text(wait.text_content() or "")  # ticks live
    screenshot(page, "console-queue")

    item.get_by_test_id("take").click()
    expect(item).to_have_count(0)
    conversation = page.get_by_test_id("conversation")
    expect(conversation).to_have_attribute("data-conversation-id", customer.id)
    expect(page.get_by_test_id("conv-state")).to_have_text("With an agent")

    # The whole bot transcript, and what the bot learnt: nobody asks the customer again.
    expect(bubbles(page, "customer")).to_have_text(
        ["where is my order?", "PL-204817", "anna.lee@example.com", "I want to talk to a human"])
    expect(bubbles(page, "bot").filter(has_text="DHL")).to_have_count(1)
    summary = page.get_by_test_id("summary")
    expect(summary.locator('[data-testid="slot"][data-slot="order_id"] dd')).to_have_text(
        "PL-204817")
    expect(summary.locator('[data-testid="intent"][data-intent="request_human"]')).to_have_count(1)
    expect(page.get_by_test_id("summary-reason")).to_have_text("Asked for a person")
    suggestion = page.get_by_test_id("suggestion").first
    expect(suggestion).to_be_visible()
    expect(page.get_by_test_id("suggestion").filter(has_text="PL-204817")).to_have_count(1)

    reply = page.get_by_test_id("reply-input")
    suggestion.click()  # a suggestion only fills the reply box
    expect(reply).not_to_have_value("")
    assert len([m for m in customer.transcript()["messages"] if m["role"] == "agent"]) == 0

    with customer_events(stack, customer) as widget:
        # Typing both ways.
        widget.send(json.dumps({"type": "typing"}))
        expect(page.get_by_test_id("customer-typing")).to_be_visible()
        reply.fill("")
        reply.press_sequentially("Hi, I'm here to help")
        wait_for_event(widget, lambda e: (e.get("type"), e.get("role")) == ("typing", "agent")
                       and bool(e.get("name")))
        reply.press("Enter")
        expect(reply).to_have_value("")
        expect(bubbles(page, "agent")).to_have_text(["Hi, I'm here to help"])
        wait_for_event(widget, lambda e: e.get("type") == "message"
                       and e["message"]["role"] == "agent")
    mine = [m for m in customer.transcript()["messages"] if m["role"] == "agent"]
    assert [m["text"] for m in mine] == ["Hi, I'm here to help"]

    customer.say("thanks!")
    expect(bubbles(page, "customer").last).to_have_text("thanks!")
    expect(page.get_by_test_id("customer-typing")).to_be_hidden()

    note_text = "Prefers email. <b>VIP</b>"
    page.get_by_test_id("note-input").fill(note_text)
    page.get_by_test_id("note-add").click()
    note = page.get_by_test_id("note")
    expect(note).to_have_count(1)
    expect(note.locator(".note-text")).to_have_text(note_text)  # literal text, never markup
    assert note.locator("b").count() == 0
    expect(page.get_by_text("Internal — not visible to customer")).to_be_visible()
    texts = [m["text"] for m in customer.transcript()["messages"]]
    assert not any("VIP" in t for t in texts), texts
    ids = bubbles(page).evaluate_all("els => els.map(e => e.closest('li').dataset.messageId)")
    assert len(ids) == len(set(ids)), f"a message is shown twice: {ids}"
    screenshot(page, "console-conversation")

    # Hand back with what was learnt; the bot takes over again.
    page.get_by_test_id("handback").click()
    expect(page.get_by_test_id("handback-row").first).to_be_visible()
    keys = page.get_by_test_id("handback-key").evaluate_all("els => els.map(e => e.value)")
    assert "order_id" in keys, keys
    expect(page.get_by_test_id("handback-value").nth(keys.index("order_id"))).to_have_value(
        "PL-204817")
    screenshot(page, "console-handback")
    page.get_by_test_id("handback-submit").click()
    expect(page.get_by_test_id("conv-state")).to_have_text("With the bot")
    expect(page.get_by_test_id("reply-input")).to_be_disabled()
    expect(page.locator(f'[data-testid="recent-item"][data-conversation-id="{customer.id}"]')
           ).to_have_count(1)
    assert customer.transcript()["state"] == "bot"
    turn = customer.say("where is my order?")
    assert turn["state"] == "bot"
    assert [m["role"] for m in turn["messages"]][:2] == ["customer", "bot"], turn
    assert not errors, errors


def test_lost_race_transfer_in_resolve_and_csat(stack: Stack, context: BrowserContext,
                                                api: httpx.Client) -> None:
    email, me = make_agent(stack, "Cam Rivera")
    other_email, other_id = make_agent(stack, "Bo Smith")
    other = {"Authorization": "Bearer " + api.post("/api/v1/auth/login", json={
        "email": other_email, "password": PASSWORD}).json()["token"]}
    assert api.put("/api/v1/agent/presence", headers=other,
                   json={"presence": "online"}).status_code == 200

    page = context.new_page()
    sign_in(page, stack, email)
    customer = queued_customer(api)
    item = queue_item(page, customer)
    expect(item).to_be_visible(timeout=10_000)

    # A colleague is quicker: our claim reaches the server just after theirs.
    def colleague_first(route: Route) -> None:
        taken = api.post(f"/api/v1/agent/conversations/{customer.id}/claim", headers=other)
        assert taken.status_code == 200, taken.text
        route.continue_()

    page.route(re.compile(rf".*/agent/conversations/{customer.id}/claim$"), colleague_first)
    item.get_by_test_id("take").click()
    expect(page.get_by_test_id("toast").filter(has_text="Another agent took it")).to_be_visible()
    expect(item).to_have_count(0)
    page.unroute(re.compile(rf".*/agent/conversations/{customer.id}/claim$"))

    # The colleague hands it over to us: it shows up in "My conversations" live.
    moved = api.post(f"/api/v1/agent/conversations/{customer.id}/transfer", headers=other,
                     json={"agent_id": me})
    assert moved.status_code == 200, moved.text
    mine = page.locator(f'[data-testid="my-conversation"][data-conversation-id="{customer.id}"]')
    expect(mine).to_be_visible()
    mine.click()
    expect(page.get_by_test_id("conv-state")).to_have_text("With an agent")
    expect(page.get_by_test_id("csat")).to_be_hidden()

    # … we pass it back through the Transfer dialog, and they return it once more.
    page.get_by_test_id("transfer").click()
    page.get_by_test_id("transfer-agent").select_option(str(other_id))
    page.get_by_test_id("transfer-submit").click()
    expect(mine).to_have_count(0)
    expect(page.get_by_test_id("reply-input")).to_be_disabled()
    held = api.get(f"/api/v1/agent/conversations/{customer.id}", headers=other).json()
    assert (held["conversation"]["state"], held["conversation"]["agent_id"]) == (
        "with_agent", other_id)
    assert api.post(f"/api/v1/agent/conversations/{customer.id}/transfer", headers=other,
                    json={"agent_id": me}).status_code == 200
    expect(mine).to_be_visible()
    mine.click()
    expect(page.get_by_test_id("reply-input")).to_be_enabled()

    page.get_by_test_id("resolve").click()
    expect(page.get_by_test_id("conv-state")).to_have_text("Resolved")
    expect(bubbles(page, "bot").last).to_contain_text("rate us")
    expect(mine).to_have_count(0)
    recent = page.locator(f'[data-testid="recent-item"][data-conversation-id="{customer.id}"]')
    expect(recent).to_be_visible()

    rated = api.post(f"/api/v1/conversations/{customer.id}/csat", headers=customer.headers,
                     json={"score": 5, "comment": "Quick and kind"})
    assert rated.status_code == 204, rated.text
    expect(page.get_by_test_id("csat")).to_contain_text("5 / 5")  # live

    # Reopen after a reload: the session and the recently-closed list survive it.
    page.reload()
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "open")
    expect(page.get_by_test_id("conversation")).to_be_hidden()
    recent.click()
    csat = page.get_by_test_id("csat")
    expect(csat).to_have_attribute("data-score", "5")
    expect(csat).to_contain_text("5 / 5")
    expect(csat).to_contain_text("Quick and kind")
    screenshot(page, "console-csat")


def test_take_next_badges_and_session_end(stack: Stack, context: BrowserContext,
                                          api: httpx.Client) -> None:
    email, _ = make_agent(stack, "Dee Park")
    page = context.new_page()
    # The console's live stream goes through Playwright, so the test can cut it.
    streams: list[WebSocketRoute] = []
    hold = {"next": False}

    def stream(ws: WebSocketRoute) -> None:
        streams.append(ws)
        if not hold["next"]:
            ws.connect_to_server()

    page.route_web_socket(re.compile(r".*/api/v1/agent/stream\b.*"), stream)
    page.goto(stack.api_url + "/console")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill("not the password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-message")).to_have_text("Wrong email or password.")
    sign_in(page, stack, email)

    # An upset customer jumps the queue: "Take next" gets them first.
    customer = new_customer(api)
    turn = customer.say("This is the WORST service ever, absolutely ridiculous!!!")
    assert turn["state"] == "queued"
    item = queue_item(page, customer)
    expect(item.get_by_test_id("reason")).to_have_text("Upset customer")
    expect(item.get_by_test_id("priority")).to_have_text("Urgent")
    page.get_by_test_id("take-next").click()
    expect(page.get_by_test_id("conversation")).to_have_attribute("data-conversation-id",
                                                                   customer.id)
    expect(item).to_have_count(0)

    # The stream drops; what happens while it is down shows once it is back.
    connection = page.get_by_test_id("connection")
    before = len(streams)
    hold["next"] = True
    streams[-1].close(code=1012, reason="restart")
    expect(connection).to_have_attribute("data-state", "offline")
    for _ in range(100):  # the console tries again after about a second: hold that attempt
        if len(streams) > before:
            break
        page.wait_for_timeout(100)
    assert len(streams) == before + 1, "the console did not reconnect"
    missed = queued_customer(api)  # its "queued" event goes nowhere
    page.wait_for_timeout(300)
    expect(queue_item(page, missed)).to_have_count(0)
    streams[-1].connect_to_server()
    expect(connection).to_have_attribute("data-state", "open")
    expect(queue_item(page, missed)).to_be_visible(timeout=5_000)  # lists reloaded on hello
    queue_item(page, missed).get_by_test_id("take").click()
    expect(page.get_by_test_id("conversation")).to_have_attribute("data-conversation-id",
                                                                   missed.id)

    # A conversation past its first-response target, whose text looks like markup.
    def late_one(route: Route) -> None:
        response = route.fetch()
        fake = {"id": "f" * 32, "state": "queued", "locale": "zh", "priority": 0, "skill": None,
                "handoff_reason": "low_confidence", "queued_at": "2020-01-01T00:00:00Z",
                "waiting_s": 999.0, "agent_id": None,
                "last_message": '<img src=x onerror="window.pwned=1">',
                "sla": {"first_response_due": "2020-01-01T00:02:00Z",
                        "resolution_due": "2020-01-01T00:30:00Z",
                        "first_response_breached": True, "resolution_breached": False}}
        route.fulfill(response=response, json=[*response.json(), fake])

    page.route(re.compile(r".*/api/v1/agent/queue$"), late_one)
    page.reload()
    late = page.locator(f'[data-testid="queue-item"][data-conversation-id="{"f" * 32}"]')
    expect(late.get_by_test_id("sla-breach")).to_be_visible()
    expect(late.get_by_test_id("reason")).to_have_text("Bot didn't understand")
    expect(late).to_contain_text('<img src=x onerror="window.pwned=1">')
    assert late.locator("img").count() == 0 and page.evaluate("window.pwned") is None
    screenshot(page, "console-sla")
    page.unroute(re.compile(r".*/api/v1/agent/queue$"))

    # The session ends elsewhere: the next call answers 401 and the console asks to sign in.
    token = page.evaluate("sessionStorage.getItem('parley.console.token')")
    assert api.post("/api/v1/auth/logout",
                    headers={"Authorization": f"Bearer {token}"}).status_code == 204
    page.get_by_test_id("presence").click()
    expect(page.get_by_test_id("login-message")).to_contain_text("Your session has expired")
    expect(page.get_by_test_id("login-email")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('parley.console.token')") is None
