"""Browser fixtures shared by the end-to-end tests: Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.servers import unavailable

playwright_sync = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, BrowserContext  # noqa: E402 - after the importorskip

from tests.e2e.helpers import browser_context  # noqa: E402

CHROMIUM = os.environ.get("PARLEY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="session", autouse=True)
def _chromium_available() -> None:
    """Checked before the stack starts: skip locally, fail under CI (which installs it)."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        message = (f"Chromium not found at {CHROMIUM}: install it with "
                   "`apt-get install -y chromium` (or set PARLEY_CHROMIUM)")
        unavailable(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context per test (en-US, 1280×800); modules override it for others."""
    with browser_context(browser) as context:
        yield context
