"""Rate limits and login lockouts shared through Redis by several API processes (two limiter
instances stand for two processes), and failing open when Redis is down."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from core.config import Settings
from core.errors import TooManyRequests
from core.ratelimit import MEMORY, LoginGuard, RateLimiter, storage_url
from tests.servers import REDIS_URL, require_redis
from tests.unit.conftest import ScriptedDialogue
from web.app import create_app

pytestmark = pytest.mark.unit


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own, its keys deleted afterwards."""
    require_redis()
    prefix = f"parley-test-{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_two_processes_share_one_limit(prefix: str) -> None:
    first, second = (RateLimiter(per_minute=60, burst=4, url=REDIS_URL, prefix=prefix,
                                 name="conversations") for _ in range(2))
    assert [limiter.retry_after("203.0.113.9") for limiter in (first, second) * 2] == [0] * 4
    for limiter in (first, second):  # the fifth is refused whichever process it reaches
        assert 0 < limiter.retry_after("203.0.113.9") <= 4
        with pytest.raises(TooManyRequests) as caught:
            limiter.check("203.0.113.9", "conversations")
        assert caught.value.code == "rate_limited"
    assert first.retry_after("198.51.100.1") == 0  # another key has its own allowance


def test_two_processes_share_the_login_lockout(prefix: str) -> None:
    first, second = (LoginGuard(per_account=3, per_address=5, url=REDIS_URL, prefix=prefix)
                     for _ in range(2))
    for guard, address in ((first, "a"), (second, "b"), (first, "c")):
        guard.attempt(account="root@example.com", address=address)
        guard.failed(account="root@example.com", address=address)
    for guard in (first, second):
        with pytest.raises(TooManyRequests) as caught:
            guard.attempt(account="root@example.com", address="d")
        assert caught.value.code == "too_many_attempts"
        assert 895 < caught.value.retry_after <= 900
    # Failures from one address on either process add up too.
    for i, guard in enumerate((first, second, first, second, first)):
        guard.attempt(account=f"user{i}@example.com", address="x")
        guard.failed(account=f"user{i}@example.com", address="x")
    with pytest.raises(TooManyRequests):
        second.attempt(account="other@example.com", address="x")
    # A success on one process clears the account for both.
    at = first.attempt(account="ok@example.com", address="y")
    first.succeeded(account="ok@example.com", address="y", at=at)
    second.attempt(account="ok@example.com", address="y")


def test_redis_down_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    limiter = RateLimiter(per_minute=1, burst=1, url=url)
    guard = LoginGuard(per_account=1, per_address=1, url=url)
    with caplog.at_level(logging.WARNING, logger="core.ratelimit"):
        assert [limiter.retry_after("k") for _ in range(3)] == [0, 0, 0]
        limiter.check("k", "requests")
        for _ in range(3):
            at = guard.attempt(account="root@example.com", address="x")
            guard.failed(account="root@example.com", address="x")
        guard.succeeded(account="root@example.com", address="x", at=at)
    assert "rate-limit storage unavailable" in caplog.text


def test_the_api_answers_while_redis_is_down(settings: Settings) -> None:
    down = settings.model_copy(update={"rate_limit_url": f"redis://127.0.0.1:{closed_port()}/0",
                                       "rate_conversations_burst": 1})
    with TestClient(create_app(down, dialogue=ScriptedDialogue())) as client:
        codes = [client.post("/api/v1/conversations", json={}).status_code for _ in range(3)]
        assert codes == [201] * 3  # no limit is enforced, and nothing answers 500
        login = client.post("/api/v1/auth/login", json={"email": "nobody@example.com",
                                                        "password": "wrong"})
        assert login.status_code == 401


def test_the_storage_follows_the_settings(settings: Settings) -> None:
    def url(**update: str) -> str:
        return storage_url(settings.model_copy(update=update))

    assert url() == MEMORY
    assert url(stream_url="redis://cache:6379/0") == "redis://cache:6379/0"
    assert url(stream_url="redis://cache:6379/0", rate_limit_url="memory://") == MEMORY
    assert url(rate_limit_url="redis://limits:6379/2") == "redis://limits:6379/2"
