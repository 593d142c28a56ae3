"""Helpers shared by the browser tests: screenshots and the widget's message bubbles."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Locator, Page, expect


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
