"""Abuse limits: conversations per client address, messages per conversation."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import limits.storage.memory
import pytest
from fastapi.testclient import TestClient

from core.config import Settings
from core.ratelimit import BoundedMemoryStorage, RateLimiter
from tests.unit.conftest import ScriptedDialogue
from web.app import create_app

pytestmark = pytest.mark.unit


def test_a_limit_allows_its_burst_then_refills_at_its_rate(monkeypatch: Any) -> None:
    now = [1_000.0]
    monkeypatch.setattr(limits.storage.memory, "time", SimpleNamespace(time=lambda: now[0]))
    limiter = RateLimiter(per_minute=60, burst=3, clock=lambda: now[0])
    # A moving window: 3 at once, 3 every 3 s (60 a minute) after that.
    assert [limiter.retry_after("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.retry_after("a") == pytest.approx(3.0)
    assert limiter.retry_after("b") == 0  # another key has its own window
    now[0] += 2.0
    assert limiter.retry_after("a") == pytest.approx(1.0)
    now[0] += 1.0
    assert [limiter.retry_after("a") for _ in range(4)] == [0, 0, 0, pytest.approx(3.0)]


def test_memory_stays_bounded() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, max_keys=100)
    for i in range(1000):
        limiter.retry_after(f"k{i}")
    storage = limiter._windows.storage
    assert isinstance(storage, BoundedMemoryStorage) and len(storage.events) == 100
    assert limiter.retry_after("k999") > 0  # the most recent keys are kept


@pytest.fixture
def limited(settings: Settings) -> Any:
    tight = settings.model_copy(update={"rate_conversations_burst": 3,
                                        "rate_conversations_per_minute": 1,
                                        "rate_messages_burst": 2,
                                        "rate_messages_per_minute": 1,
                                        "trusted_proxies": ["testclient"]})
    with TestClient(create_app(tight, dialogue=ScriptedDialogue())) as client:
        yield client


def test_conversations_per_address_are_limited_with_retry_after(limited: TestClient) -> None:
    codes = [limited.post("/api/v1/conversations", json={}).status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    refused = limited.post("/api/v1/conversations", json={})
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    # Behind a trusted proxy each client has its own allowance.
    behind = limited.post("/api/v1/conversations", json={},
                          headers={"X-Forwarded-For": "203.0.113.7"})
    assert behind.status_code == 201


def test_messages_per_conversation_are_limited(limited: TestClient) -> None:
    conversation = limited.post("/api/v1/conversations", json={}).json()
    headers = {"Authorization": f"Bearer {conversation['token']}"}
    url = f"/api/v1/conversations/{conversation['id']}/messages"
    codes = [limited.post(url, headers=headers, json={"text": f"hi {i}",
                                                      "client_message_id": f"m{i}"}).status_code
             for i in range(3)]
    assert codes == [200, 200, 429]
    transcript = limited.get(url, headers=headers).json()["messages"]
    assert [m["text"] for m in transcript if m["role"] == "customer"] == ["hi 0", "hi 1"]
