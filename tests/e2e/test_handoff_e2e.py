"""Hand-off end to end, both sides in real browsers: the customer in the widget, the agent in
the console, against the real stack.

Run with ``pytest -m e2e tests/e2e/test_handoff_e2e.py``. Set ``PARLEY_E2E_SCREENSHOTS=/some/dir``
to keep screenshots of the widget while queued, with an agent, and after rating.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.e2e.helpers import (
    PASSWORD,
    browser_context,
    make_staff,
    messages,
    screenshot,
    send,
    send_and_wait_reply,
)
from tests.stack import Stack

pytestmark = [pytest.mark.e2e]

playwright_sync = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import (  # noqa: E402 - after the importorskip above
    Browser,
    BrowserContext,
    Locator,
    Page,
    expect,
)

TIMEOUT_MS = 15_000
AGENT_NAME = "Mei Chen"


@pytest.fixture
def customer(browser: Browser) -> Iterator[BrowserContext]:
    with browser_context(browser, timeout_ms=TIMEOUT_MS) as context:
        yield context


@pytest.fixture
def agent(browser: Browser) -> Iterator[BrowserContext]:
    # Its own storage: the agent's session is not the customer's.
    with browser_context(browser, timeout_ms=TIMEOUT_MS) as context:
        yield context



# ----------------------------------------------------------------------------- customer side




def ask_for_a_person(page: Page) -> None:
    send(page, "I want to talk to a human")
    state = page.get_by_test_id("parley-state")
    expect(state).to_have_attribute("data-state", "queued")
    expect(state).to_contain_text("Connecting you to a person")
    # An agent is online (signed in before), so the widget shows a place and a wait estimate.
    expect(page.get_by_test_id("parley-queue")).to_have_text(
        re.compile(r"^(You are number \d+ in line|You're next in line) — about \d+ min$"))


# -------------------------------------------------------------------------------- agent side

def sign_in(page: Page, stack: Stack, email: str) -> None:
    page.goto(stack.api_url + "/console")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("agent-name")).to_have_text(AGENT_NAME)
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "open")
    presence = page.get_by_test_id("presence")
    expect(presence).to_have_attribute("data-presence", "offline")
    presence.click()
    expect(presence).to_have_attribute("data-presence", "online")


def take(console: Page, conversation_id: str) -> None:
    item = console.locator(f'[data-testid="queue-item"][data-conversation-id="{conversation_id}"]')
    expect(item).to_be_visible()  # pushed by the console's live stream
    item.get_by_test_id("take").click()
    expect(console.get_by_test_id("conversation")).to_have_attribute("data-conversation-id",
                                                                      conversation_id)
    expect(console.get_by_test_id("conv-state")).to_have_text("With an agent")


def console_bubbles(page: Page, role: str) -> Locator:
    return page.locator(f'[data-testid="conversation-message"][data-role="{role}"] '
                        '[data-testid="message-text"]')


def test_customer_and_agent_hand_off_hand_back_and_rate(stack: Stack, customer: BrowserContext,
                                                        agent: BrowserContext) -> None:
    errors: list[str] = []
    console = agent.new_page()
    console.on("pageerror", lambda exc: errors.append(f"console: {exc}"))
    sign_in(console, stack, make_staff(stack, AGENT_NAME, languages=("en", "zh"))[0])

    widget = customer.new_page()
    widget.on("pageerror", lambda exc: errors.append(f"widget: {exc}"))
    widget.goto(stack.api_url + "/")
    widget.get_by_test_id("parley-launcher").click()
    expect(widget.get_by_test_id("parley-panel")).to_be_visible()
    state = widget.get_by_test_id("parley-state")

    # The bot first: the order is found.
    send_and_wait_reply(widget, "where is my order?")
    expect(messages(widget, "bot").last).to_contain_text(re.compile(r"order number", re.I))
    send_and_wait_reply(widget, "PL-204817")
    send(widget, "anna.lee@example.com")  # anonymous: the order's email too
    expect(messages(widget, "bot").filter(has_text="PL-204817").filter(has_text="DHL")
           ).to_have_count(1)

    # Then a person: queued, with a place in line.
    ask_for_a_person(widget)
    conversation_id = json.loads(
        widget.evaluate("localStorage.getItem('parley.conversation')"))["id"]
    screenshot(widget, "handoff-queued")

    take(console, conversation_id)
    expect(state).to_have_attribute("data-state", "with_agent")
    expect(state).to_have_text(f"You're chatting with {AGENT_NAME}")
    expect(widget.get_by_test_id("parley-queue")).to_be_hidden()
    expect(messages(widget, "system").last).to_have_text(
        f"{AGENT_NAME} from our support team has joined the chat.")

    # The agent types, then writes: a typing line, then an agent bubble with the name above.
    reply = console.get_by_test_id("reply-input")
    reply.press_sequentially("Hi, I can see your order PL-204817")
    typing = widget.get_by_test_id("parley-agent-typing")
    expect(typing).to_have_text(f"{AGENT_NAME} is typing…")
    reply.press("Enter")
    expect(reply).to_have_value("")
    from_agent = messages(widget, "agent")
    expect(from_agent).to_have_text(["Hi, I can see your order PL-204817"])
    expect(from_agent.last).to_have_attribute("data-author", AGENT_NAME)
    expect(widget.locator(".row.agent .who").last).to_have_text(AGENT_NAME)
    expect(typing).to_be_hidden()  # the message ends the typing line
    screenshot(widget, "handoff-with-agent")

    # The customer types back: the console sees it typing, then the message, live.
    field = widget.get_by_test_id("parley-input")
    field.press_sequentially("great, thanks")
    expect(console.get_by_test_id("customer-typing")).to_be_visible()
    field.press("Enter")
    expect(field).to_have_value("")
    expect(console_bubbles(console, "customer").last).to_have_text("great, thanks")

    # Hand back to the bot: it knows the order without asking again.
    console.get_by_test_id("handback").click()
    expect(console.get_by_test_id("handback-row").first).to_be_visible()
    console.get_by_test_id("handback-submit").click()
    expect(console.get_by_test_id("conv-state")).to_have_text("With the bot")
    expect(state).to_have_attribute("data-state", "bot")
    expect(state).to_have_text("Back with our assistant")
    expect(messages(widget, "system").last).to_contain_text("back with our virtual assistant")
    send_and_wait_reply(widget, "where is my order?")
    expect(messages(widget, "bot").last).to_contain_text(re.compile(r"PL-204817|order number",
                                                                    re.I))
    expect(state).to_be_hidden()  # the next turn with the bot clears the "back" line

    # A person once more, who resolves it: the customer rates the conversation.
    ask_for_a_person(widget)
    take(console, conversation_id)
    expect(state).to_have_text(f"You're chatting with {AGENT_NAME}")
    console.get_by_test_id("resolve").click()
    expect(console.get_by_test_id("conv-state")).to_have_text("Resolved")
    expect(state).to_have_attribute("data-state", "resolved")
    form = widget.get_by_test_id("parley-csat")
    expect(form).to_be_visible()
    expect(widget.get_by_test_id("parley-csat-score")).to_have_count(5)
    submit = widget.get_by_test_id("parley-csat-submit")
    expect(submit).to_be_disabled()  # a score first
    widget.locator('[data-testid="parley-csat-score"][data-score="5"]').click()
    expect(widget.locator('[data-testid="parley-csat-score"][data-score="5"]')).to_have_attribute(
        "aria-pressed", "true")
    widget.get_by_test_id("parley-csat-comment").fill("Quick and kind")
    submit.click()
    expect(widget.get_by_test_id("parley-csat-thanks")).to_have_text("Thanks for your feedback!")
    expect(form).to_have_count(0)
    screenshot(widget, "handoff-rated")

    # The console shows the rating live, with the comment.
    csat = console.get_by_test_id("csat")
    expect(csat).to_have_attribute("data-score", "5")
    expect(csat).to_contain_text("5 / 5")
    expect(csat).to_contain_text("Quick and kind")

    # Rated once: after a reload the form does not come back.
    widget.reload()
    widget.get_by_test_id("parley-launcher").click()
    expect(widget.get_by_test_id("parley-state")).to_have_attribute("data-state", "resolved")
    expect(messages(widget, "agent")).to_have_count(1)
    expect(widget.get_by_test_id("parley-csat")).to_have_count(0)
    ids = messages(widget).evaluate_all("els => els.map(e => e.dataset.messageId)")
    assert all(ids) and len(ids) == len(set(ids)), ids
    assert not errors, errors
