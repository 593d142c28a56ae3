"""Helpers shared by the browser tests: browser contexts, staff accounts, screenshots and the
widget's message bubbles."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from staff.schemas import AgentCreate
from tests.stack import Stack

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

TIMEOUT_MS = 20_000
PASSWORD = "correct horse battery staple"  # every staff account's


@contextmanager
def browser_context(browser: Browser, *, timeout_ms: int = TIMEOUT_MS,
                    **options: Any) -> Iterator[BrowserContext]:
    """A fresh context (en-US, 1280×800 unless ``options`` say otherwise) whose actions and
    ``expect`` wait up to ``timeout_ms``; closed afterwards."""
    context = browser.new_context(**{"locale": "en-US",
                                     "viewport": {"width": 1280, "height": 800}, **options})
    context.set_default_timeout(timeout_ms)
    expect.set_options(timeout=timeout_ms)
    try:
        yield context
    finally:
        context.close()


def make_staff(stack: Stack, name: str, *, role: str = "agent",
               languages: Sequence[str] = ("en",)) -> tuple[str, int]:
    """A new account with ``PASSWORD`` and an e-mail unique to this call (the stack is shared
    between tests); returns its e-mail and id."""
    from staff.bootstrap import create_agent

    email = f"{name.lower().replace(' ', '.')}.{uuid.uuid4().hex[:8]}@example.com"
    data = AgentCreate(email=email, name=name, password=PASSWORD, role=role,  # type: ignore[arg-type]
                       languages=list(languages))
    # create_agent runs its own event loop; Playwright's sync API already runs one here.
    with ThreadPoolExecutor(max_workers=1) as pool:
        agent = pool.submit(create_agent, stack.settings, data).result()
    return email, agent.id


def staff_headers(api: httpx.Client, email: str) -> dict[str, str]:
    """Signs ``email`` in through the API; its bearer header."""
    response = api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    """Saved only when PARLEY_E2E_SCREENSHOTS names a folder."""
    folder = os.environ.get("PARLEY_E2E_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=full_page)


def messages(page: Page, role: str | None = None) -> Locator:
    """Widget bubbles (CSS locators pierce the widget's open shadow root)."""
    role_filter = f'[data-role="{role}"]' if role else ""
    return page.locator(f'[data-testid="parley-message"]{role_filter}')


def send(page: Page, text: str) -> int:
    """Type ``text``, press Enter, wait until the server has it; return the bot bubbles before."""
    bots = messages(page, "bot").count()
    field = page.get_by_test_id("parley-input")
    field.fill(text)
    field.press("Enter")
    expect(field).to_have_value("")
    expect(messages(page, "customer").last).to_have_attribute("data-message-id", re.compile(r".+"))
    return bots


def send_and_wait_reply(page: Page, text: str) -> None:
    before = send(page, text)
    expect(messages(page, "bot")).not_to_have_count(before)
