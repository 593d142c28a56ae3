"""The analytics dashboard in a real browser (Debian's Chromium) against the real stack.

Customers talk to the bot through the public API (an answered question, one the knowledge base
cannot answer that a person then answers and the customer rates, a Chinese question, and a
message with an e-mail address); once the fold has caught up, an admin's dashboard draws its
charts from them, the language filter changes the figures, the CSV export downloads without
the address, and "Draft an article" opens the editor prefilled from the knowledge gap. An
analyst reads the same dashboard but cannot draft; an agent is turned away.

Run with ``pytest -m e2e tests/e2e/test_analytics_e2e.py``; ``PARLEY_E2E_SCREENSHOTS=/some/dir``
keeps screenshots of the dashboard and of the drafted article.
"""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import PASSWORD, browser_context, make_staff, screenshot, staff_headers
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

playwright_sync = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, BrowserContext, Page, expect  # noqa: E402

FOLD_TIMEOUT_S = 120
TZ = "Europe/Berlin"
GAP_QUESTION = "Do you sell garden furniture?"
AGENT_REPLY = "No, we only sell indoor furniture for now."
CUSTOMER_EMAIL = "jane.doe.analytics@example.com"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
ANALYTICS = "/api/v1/admin/analytics"
CHARTS = ("chart-volume", "chart-reasons", "chart-languages", "chart-intents")


@dataclass
class Seed:
    admin: str  # e-mail
    headers: dict[str, str]


def make_user(stack: Stack, role: str) -> str:
    """A new account with ``role``, speaking English and Chinese; its e-mail."""
    return make_staff(stack, f"Analytics {role.title()}", role=role, languages=("en", "zh"))[0]


class Customer:
    """One conversation through the public API."""

    def __init__(self, api: httpx.Client, locale: str) -> None:
        created = api.post("/api/v1/conversations", json={"locale": locale})
        assert created.status_code == 201, created.text
        body = created.json()
        self.api, self.id = api, body["id"]
        self.headers = {"Authorization": f"Bearer {body['token']}"}

    def says(self, text: str) -> dict[str, Any]:
        response = self.api.post(f"/api/v1/conversations/{self.id}/messages", headers=self.headers,
                                 json={"text": text, "client_message_id": uuid.uuid4().hex})
        assert response.status_code == 200, response.text
        turn: dict[str, Any] = response.json()
        return turn

    def rates(self, score: int) -> None:
        response = self.api.post(f"/api/v1/conversations/{self.id}/csat", headers=self.headers,
                                 json={"score": score})
        assert response.status_code == 204, response.text


def summary(api: httpx.Client, headers: dict[str, str], **params: str) -> dict[str, Any]:
    response = api.get(f"{ANALYTICS}/summary", headers=headers, params={"tz": TZ, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_until(what: str, check: Any, timeout_s: float = FOLD_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


@pytest.fixture(scope="module")
def seed(stack: Stack) -> Iterator[Seed]:
    """The conversations the dashboard shows, folded into the analytics facts."""
    with httpx.Client(base_url=stack.api_url, timeout=120) as api:
        admin = make_user(stack, "admin")
        headers = staff_headers(api, admin)
        online = api.put("/api/v1/agent/presence", headers=headers, json={"presence": "online"})
        assert online.status_code == 200, online.text

        Customer(api, "en").says("how many days do I have to return something")

        gap = Customer(api, "en")
        gap.says(GAP_QUESTION)
        turn = gap.says("I want to talk to a human")
        assert turn["state"] == "queued", turn
        for step, body in (("claim", None), ("messages", {"text": AGENT_REPLY}),
                           ("resolve", None)):
            response = api.post(f"/api/v1/agent/conversations/{gap.id}/{step}", headers=headers,
                                json=body)
            assert response.status_code in (200, 201), (step, response.text)
        gap.rates(4)

        Customer(api, "zh").says("退货期限是多少天？")
        Customer(api, "en").says(f"My email is {CUSTOMER_EMAIL}, where is my order?")

        def folded() -> bool:
            body = summary(api, headers)
            return (body["counts"]["conversations"] >= 4 and body["counts"]["handed_off"] >= 1
                    and body["csat"]["human"]["n"] >= 1
                    and (body["by_language"].get("zh") or {}).get("counts", {})
                    .get("conversations", 0) >= 1)

        wait_until("the fold to count the conversations", folded)
        yield Seed(admin=admin, headers=headers)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    with browser_context(browser, timezone_id=TZ, accept_downloads=True,
                         viewport={"width": 1400, "height": 900}) as context:
        yield context


def sign_in(page: Page, stack: Stack, email: str) -> None:
    page.goto(stack.api_url + "/analytics")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()


def loaded(page: Page) -> None:
    expect(page.get_by_test_id("dashboard")).to_have_attribute("aria-busy", "false")


def chart_data(page: Page, testid: str) -> dict[str, Any]:
    """The Chart.js instance on a canvas: its labels and each dataset's numbers."""
    data: dict[str, Any] = page.evaluate(
        """(testid) => {
             const canvas = document.querySelector(`[data-testid="${testid}"]`);
             const chart = window.Chart && Chart.getChart(canvas);
             if (!chart) return null;
             return {labels: chart.data.labels.map(String),
                     datasets: chart.data.datasets.map(d => d.data.map(v => v || 0))};
           }""", testid)
    return data


def total(data: dict[str, Any] | None) -> float:
    return sum(sum(d) for d in data["datasets"]) if data else 0


def painted(page: Page, testid: str) -> bool:
    """Some pixel of the canvas is not transparent."""
    return bool(page.evaluate(
        """(testid) => {
             const c = document.querySelector(`[data-testid="${testid}"]`);
             const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
             for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) return true;
             return false;
           }""", testid))


def test_the_dashboard_charts_filters_exports_and_drafts(
        stack: Stack, seed: Seed, context: BrowserContext) -> None:
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    with httpx.Client(base_url=stack.api_url, timeout=120) as api:
        everything = summary(api, seed.headers)
        chinese = summary(api, seed.headers, lang="zh")
    all_count = everything["counts"]["conversations"]
    zh_count = chinese["counts"]["conversations"]
    assert 1 <= zh_count < all_count

    sign_in(page, stack, seed.admin)
    expect(page.get_by_test_id("agent-name")).to_contain_text("(admin)")
    expect(page.get_by_test_id("filter-tz")).to_have_value(TZ)  # the browser's zone
    loaded(page)

    # Headline cards and the live counts of today.
    cards = page.get_by_test_id("cards")
    for card in ("conversations", "containment", "handoff", "abstention", "csat",
                 "first-response", "resolution", "latency"):
        expect(cards.get_by_test_id(f"card-{card}")).to_be_visible()
    expect(page.get_by_test_id("card-conversations")).to_have_attribute(
        "data-value", str(all_count))
    expect(page.get_by_test_id("card-csat").locator('[data-who="human"]')).not_to_have_attribute(
        "data-value", "")
    expect(page.get_by_test_id("today-conversations")).not_to_have_attribute("data-value", "0")

    # The charts have data, and drew it.
    page.wait_for_function("() => window.Chart && Chart.getChart(document.querySelector("
                           "'[data-testid=chart-volume]'))")
    for chart in ("chart-volume", "chart-reasons", "chart-languages"):
        assert total(chart_data(page, chart)) > 0, chart
    assert painted(page, "chart-volume")
    assert set(chart_data(page, "chart-languages")["labels"]) >= {"English", "Chinese"}
    assert page.locator('[data-testid="nlu-row"]').count() >= 1
    screenshot(page, "analytics-dashboard", full_page=True)

    # A language filter changes the figures and the charts.
    page.get_by_test_id("filter-lang").select_option("zh")
    expect(page.get_by_test_id("card-conversations")).to_have_attribute(
        "data-value", str(zh_count))
    loaded(page)
    assert chart_data(page, "chart-languages")["labels"] == ["Chinese"]
    page.wait_for_function(
        """(n) => {
             const chart = Chart.getChart(document.querySelector('[data-testid=chart-volume]'));
             return chart.data.datasets[0].data.reduce((a, b) => a + (b || 0), 0) === n;
           }""", arg=zh_count)
    assert "lang=zh" in page.url
    page.get_by_test_id("filter-lang").select_option("")
    expect(page.get_by_test_id("card-conversations")).to_have_attribute(
        "data-value", str(all_count))
    loaded(page)

    # The export: a CSV with a header and the conversations, the customer's address redacted.
    with page.expect_download() as download_info:
        page.get_by_test_id("export-csv").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    text = download.path().read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) >= 2, text
    assert "id" in rows[0] and "outcome" in rows[0], rows[0]
    assert CUSTOMER_EMAIL not in text
    assert not EMAIL.search(text), EMAIL.search(text)

    # The answer audit opens a row's details.
    expect(page.get_by_test_id("audit-row").first).to_be_visible()
    page.get_by_test_id("audit-expand").first.click()
    expect(page.get_by_test_id("audit-detail").first).to_be_visible()
    expect(page.get_by_test_id("audit-detail").first).to_contain_text("Kept sentences")

    # The knowledge gap of the unanswerable question, with the agent's reply; drafting it opens
    # the editor with a new article prefilled (the editor takes over the session).
    gap = page.get_by_test_id("gap").filter(has_text="garden furniture").first
    expect(gap).to_be_visible()
    expect(gap.get_by_test_id("gap-replies")).to_contain_text(AGENT_REPLY)
    gap.get_by_test_id("gap-draft").click()
    page.wait_for_url(re.compile(r"/editor"))
    expect(page.get_by_test_id("article-form")).to_be_visible()
    expect(page.get_by_test_id("article-title")).to_have_value(
        re.compile("garden furniture", re.IGNORECASE))
    expect(page.get_by_test_id("article-body")).to_have_value(
        re.compile("garden furniture", re.IGNORECASE))
    expect(page.get_by_test_id("article-lang")).to_have_value("en")
    expect(page.get_by_test_id("article-id")).not_to_have_value("")
    screenshot(page, "analytics-draft", full_page=True)
    assert errors == []


def test_an_analyst_reads_the_dashboard_and_an_agent_is_turned_away(
        stack: Stack, seed: Seed, context: BrowserContext) -> None:
    page = context.new_page()
    sign_in(page, stack, make_user(stack, "analyst"))
    expect(page.get_by_test_id("agent-name")).to_contain_text("(analyst)")
    loaded(page)
    expect(page.get_by_test_id("card-conversations")).not_to_have_attribute("data-value", "")
    expect(page.get_by_test_id("gap-draft").first).to_be_disabled()
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("login-message")).to_contain_text("signed out")

    page.get_by_test_id("login-email").fill(make_user(stack, "agent"))
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("denied")).to_be_visible()
    expect(page.get_by_test_id("dashboard")).to_be_hidden()
