"""The chat widget in a real browser (Debian's Chromium) against the real stack.

Run with ``pytest -m e2e tests/e2e``. Set ``PARLEY_E2E_SCREENSHOTS=/some/dir`` to keep
screenshots of the open widget.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.helpers import TIMEOUT_MS, messages, screenshot, send, send_and_wait_reply
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

playwright_sync = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import (  # noqa: E402 - after the importorskip above
    Browser,
    BrowserContext,
    Page,
    Route,
    expect,
)


def assert_no_duplicates(page: Page) -> None:
    ids = messages(page).evaluate_all("els => els.map(e => e.dataset.messageId)")
    assert all(ids), f"unconfirmed message bubbles: {ids}"
    assert len(ids) == len(set(ids)), f"a message is shown twice: {ids}"


def test_english_order_tracking_and_restore(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(stack.api_url + "/")
    launcher = page.get_by_test_id("parley-launcher")
    expect(launcher).to_contain_text("Chat with us")
    launcher.click()
    panel = page.get_by_test_id("parley-panel")
    expect(panel).to_be_visible()
    expect(panel).to_have_attribute("role", "dialog")
    expect(page.get_by_test_id("parley-input")).to_have_attribute("maxlength", "4000")

    send_and_wait_reply(page, "hello")

    send_and_wait_reply(page, "where is my order?")
    expect(messages(page, "bot").last).to_contain_text(re.compile(r"order number", re.I))

    send_and_wait_reply(page, "PL-204817")
    expect(messages(page, "bot").last).to_contain_text(re.compile(r"email", re.I))
    send(page, "anna.lee@example.com")  # the order's email: anonymous customers must match it
    answer = messages(page, "bot").filter(has_text="PL-204817").filter(has_text="DHL")
    expect(answer).to_have_count(1)
    screenshot(page, "widget-en")

    assert_no_duplicates(page)
    transcript = messages(page).evaluate_all(
        "els => els.map(e => [e.dataset.role, e.dataset.messageId, e.textContent])")
    stored = page.evaluate("localStorage.getItem('parley.conversation')")
    assert stored and json.loads(stored)["id"]

    page.reload()
    page.get_by_test_id("parley-launcher").click()
    expect(page.get_by_test_id("parley-panel")).to_be_visible()
    expect(messages(page)).to_have_count(len(transcript))
    restored = messages(page).evaluate_all(
        "els => els.map(e => [e.dataset.role, e.dataset.messageId, e.textContent])")
    assert restored == transcript
    assert [t for role, _, t in restored if role == "customer"] == [
        "hello", "where is my order?", "PL-204817", "anna.lee@example.com"]


def test_chinese_handoff_and_literal_text(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(stack.api_url + "/?lang=zh")
    launcher = page.get_by_test_id("parley-launcher")
    expect(launcher).to_contain_text("在线客服")
    launcher.click()
    expect(page.get_by_test_id("parley-panel")).to_be_visible()

    send_and_wait_reply(page, "你好")
    expect(messages(page, "bot").last).to_contain_text("您好")

    send(page, "我想转人工")
    state = page.get_by_test_id("parley-state")
    expect(state).to_be_visible()
    expect(state).to_contain_text("正在为您转接人工客服")
    expect(state).to_have_attribute("data-state", "queued")

    send(page, "<b>x</b>")
    bubble = messages(page, "customer").last
    expect(bubble).to_have_text("<b>x</b>")
    assert bubble.locator("b").count() == 0
    screenshot(page, "widget-zh")
    assert_no_duplicates(page)


def test_buttons_and_citations(stack: Stack, context: BrowserContext) -> None:
    """A button sends its payload but shows its title; citations render as "Sources"."""
    posted: list[dict[str, str]] = []

    def record(route: Route) -> None:
        if route.request.method == "POST":
            posted.append(json.loads(route.request.post_data or "{}"))
        route.continue_()

    context.route(re.compile(r".*/api/v1/conversations/[^/]+/messages$"), record)
    page = context.new_page()
    page.goto(stack.api_url + "/")
    page.get_by_test_id("parley-launcher").click()

    send_and_wait_reply(page, "what's your return policy")
    sources = page.get_by_test_id("parley-sources").last
    expect(sources).to_contain_text("Sources:")
    cited = sources.get_by_test_id("parley-citation").first
    expect(cited).to_be_visible()
    expect(cited).to_contain_text("Returns")  # the policy the answer came from
    expect(cited).to_have_attribute("title", re.compile(r"\w"))  # the snippet, on hover

    send_and_wait_reply(page, "qwzx plorf vantu")
    chip = page.get_by_test_id("parley-button").filter(has_text="Talk to a person").last
    expect(chip).to_be_visible()
    chip.click()
    expect(messages(page, "customer").last).to_have_text("Talk to a person")
    expect(page.get_by_test_id("parley-state")).to_contain_text("Connecting you to a person")
    # A click sends the title as text and the button's payload in its own field.
    assert (posted[-1]["text"], posted[-1]["payload"]) == ("Talk to a person",
                                                           "/request_human"), posted
    # The panel's frame never scrolls away: header and composer stay in place.
    assert page.get_by_test_id("parley-panel").evaluate("p => p.scrollTop") == 0
    expect(page.get_by_test_id("parley-close")).to_be_in_viewport()
    expect(page.get_by_test_id("parley-input")).to_be_in_viewport()
    screenshot(page, "widget-buttons")

    page.reload()
    page.get_by_test_id("parley-launcher").click()
    expect(messages(page, "customer").last).to_have_text("Talk to a person")
    expect(page.get_by_test_id("parley-state")).to_have_attribute("data-state", "queued")
    assert_no_duplicates(page)


def test_third_party_embed_retries_with_same_id(stack: Stack, browser: Browser) -> None:
    """A shop on another origin embeds the tag without a locale; the browser language is zh.

    The first reply is lost on the way back to the browser (the server did answer): the widget
    must retry with the same client_message_id and show the reply once.
    """
    html = (f'<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>'
            f'<script src="{stack.api_url}/static/widget.js" defer></script></head>'
            f'<body><h1>Another shop</h1></body></html>').encode()

    class Shop(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Shop)  # another origin: another port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    shop = f"http://127.0.0.1:{server.server_address[1]}/"
    assert not stack.api_url.startswith(shop)
    context = browser.new_context(locale="zh-CN")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        posted: list[str] = []

        def flaky(route: Route) -> None:
            if route.request.method != "POST":
                route.continue_()
                return
            posted.append(json.loads(route.request.post_data or "{}")["client_message_id"])
            if len(posted) == 1:
                route.fetch()  # the server stores and answers the message …
                route.abort("connectionreset")  # … but the browser never sees the answer
            else:
                route.continue_()

        context.route(re.compile(r".*/api/v1/conversations/[^/]+/messages$"), flaky)
        page = context.new_page()
        page.goto(shop)
        launcher = page.get_by_test_id("parley-launcher")
        expect(launcher).to_contain_text("在线客服")
        launcher.click()
        send_and_wait_reply(page, "你好")
        expect(messages(page, "bot")).to_have_count(1)
        expect(messages(page, "bot").first).to_contain_text("您好")
        for _ in range(100):  # the stream may show the reply before the retry has gone out
            if len(posted) >= 2:
                break
            page.wait_for_timeout(100)
        assert len(posted) >= 2 and len(set(posted)) == 1, posted
        expect(page.get_by_test_id("parley-delivery")).to_have_count(0)  # no "not delivered"
        page.wait_for_timeout(500)  # the retried answer must not add a second copy
        expect(messages(page, "bot")).to_have_count(1)
        expect(messages(page, "customer")).to_have_count(1)
        assert_no_duplicates(page)
    finally:
        context.close()
        server.shutdown()
        server.server_close()
