"""Failed logins are limited per account and per address, on a fake clock.

5 failures for an account or 20 from an address within 15 minutes answer 429
``too_many_attempts`` with Retry-After; a success clears the account's count; unknown
accounts behave exactly like real ones.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import limits.storage.memory
import pytest

from core.errors import TooManyRequests
from staff import service
from staff.router import get_login_guard
from tests.unit.test_handoff import PASSWORD, make_agent

pytestmark = pytest.mark.unit
WINDOW_S = 900.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A fake clock, for the guard and for limits' in-process storage alike."""
    fake = Clock()
    monkeypatch.setattr(limits.storage.memory, "time", SimpleNamespace(time=fake))
    return fake


@pytest.fixture
def guarded(client, settings, clock):  # type: ignore[no-untyped-def]
    guard = service.LoginGuard(clock=clock)
    client.app.dependency_overrides[get_login_guard] = lambda: guard
    make_agent(settings, "root@example.com", role="admin")
    settings.trusted_proxies = ["testclient"]  # so tests can speak for several addresses
    yield client
    client.app.dependency_overrides.clear()


def login(client, email: str, password: str, address: str = "203.0.113.1"):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/auth/login", json={"email": email, "password": password},
                       headers={"X-Forwarded-For": address})


def code(response) -> str:  # type: ignore[no-untyped-def]
    return response.json()["error"]["code"]


def test_five_failures_lock_the_account_with_retry_after(guarded, clock):
    for _ in range(5):
        assert code(login(guarded, "root@example.com", "wrong")) == "invalid_credentials"
    clock.now += 60
    locked = login(guarded, "root@example.com", PASSWORD)  # even the right password
    assert (locked.status_code, code(locked)) == (429, "too_many_attempts")
    assert int(locked.headers["Retry-After"]) == WINDOW_S - 60
    # Another address changes nothing: the limit is the account's.
    assert code(login(guarded, "root@example.com", PASSWORD, "198.51.100.7")) == \
        "too_many_attempts"
    clock.now += WINDOW_S - 60
    assert login(guarded, "root@example.com", PASSWORD).status_code == 200


def test_a_hundred_wrong_passwords_mostly_meet_429(guarded, clock):
    answers = []
    for _ in range(100):
        answers.append(login(guarded, "root@example.com", "guess").status_code)
        clock.now += 1
    assert answers.count(401) == 5 and answers.count(429) == 95


def test_the_window_slides(guarded, clock):
    for _ in range(5):
        login(guarded, "root@example.com", "wrong")
        clock.now += 100  # failures at 0, 100, ..., 400 s
    retry = login(guarded, "root@example.com", "wrong").headers["Retry-After"]
    assert int(retry) == WINDOW_S - 500
    clock.now += WINDOW_S - 500  # the first failure has left the window: one more try
    assert code(login(guarded, "root@example.com", "wrong")) == "invalid_credentials"
    assert code(login(guarded, "root@example.com", "wrong")) == "too_many_attempts"


def test_the_lockout_grows_with_each_round_of_failures(guarded, clock):
    for _ in range(5):
        login(guarded, "root@example.com", "wrong")
    first = int(login(guarded, "root@example.com", "wrong").headers["Retry-After"])
    assert first == WINDOW_S
    clock.now += WINDOW_S  # the first lockout is over: five more tries
    for _ in range(5):
        assert code(login(guarded, "root@example.com", "wrong")) == "invalid_credentials"
    second = int(login(guarded, "root@example.com", "wrong").headers["Retry-After"])
    assert second == 2 * WINDOW_S  # until the first round is three windows old
    clock.now += second
    for _ in range(5):
        assert code(login(guarded, "root@example.com", "wrong")) == "invalid_credentials"
    third = int(login(guarded, "root@example.com", "wrong").headers["Retry-After"])
    assert third == 6 * WINDOW_S  # until the first round is nine windows old
    # The right password clears the account, once it may be tried again.
    clock.now += third
    assert login(guarded, "root@example.com", PASSWORD).status_code == 200
    for _ in range(5):
        assert code(login(guarded, "root@example.com", "wrong")) == "invalid_credentials"


def test_a_success_clears_the_accounts_count(guarded):
    for _ in range(4):
        login(guarded, "root@example.com", "wrong")
    assert login(guarded, "ROOT@example.com", PASSWORD).status_code == 200
    for _ in range(5):
        assert code(login(guarded, "root@example.com", "wrong")) == "invalid_credentials"
    assert code(login(guarded, "root@example.com", "wrong")) == "too_many_attempts"


def test_the_account_is_case_insensitive(guarded):
    for email in ("root@example.com", "Root@example.com", "ROOT@EXAMPLE.COM",
                  "root@Example.com", "rOOt@example.com"):
        login(guarded, email, "wrong")
    assert code(login(guarded, "root@example.com", PASSWORD)) == "too_many_attempts"


def test_twenty_failures_from_one_address_lock_it(guarded, clock):
    for i in range(20):
        assert code(login(guarded, f"user{i}@example.com", "wrong")) == "invalid_credentials"
    blocked = login(guarded, "root@example.com", PASSWORD)
    assert (blocked.status_code, code(blocked)) == (429, "too_many_attempts")
    assert login(guarded, "root@example.com", PASSWORD, "198.51.100.7").status_code == 200
    clock.now += WINDOW_S
    assert login(guarded, "root@example.com", PASSWORD).status_code == 200


def test_successes_do_not_use_up_the_address(guarded):
    for _ in range(30):
        assert login(guarded, "root@example.com", PASSWORD).status_code == 200


def test_unknown_accounts_look_like_real_ones(guarded, monkeypatch):
    checked: list[str] = []
    verify = service.verify_password

    def spy(password: str, stored: str) -> bool:
        checked.append(stored)
        return verify(password, stored)

    monkeypatch.setattr(service, "verify_password", spy)

    def story(email: str) -> list[tuple[int, dict[str, Any]]]:
        answers = [login(guarded, email, "wrong") for _ in range(6)]
        return [(r.status_code, r.json()) for r in answers]

    real, unknown = story("root@example.com"), story("nobody@example.com")
    assert real == unknown  # the same codes and messages, lockout included
    assert [status for status, _ in real] == [401] * 5 + [429]
    assert len(checked) == 10  # a password hash was checked on every let-through attempt
    assert checked[5:] == [service._DUMMY_HASH] * 5


def test_concurrent_attempts_cannot_all_pass_the_check(clock):
    guard = service.LoginGuard(clock=clock)
    started = [guard.attempt(account="a@example.com", address="x") for _ in range(5)]
    with pytest.raises(TooManyRequests) as caught:  # none of the five has finished yet
        guard.attempt(account="a@example.com", address="y")
    assert caught.value.code == "too_many_attempts"
    guard.succeeded(account="a@example.com", address="x", at=started[-1])
    guard.attempt(account="a@example.com", address="x")


def test_memory_is_bounded(clock):
    guard = service.LoginGuard(clock=clock, max_keys=10)
    for i in range(100):
        guard.attempt(account=f"user{i}@example.com", address=f"10.0.0.{i}")
        guard.failed(account=f"user{i}@example.com", address=f"10.0.0.{i}")
    assert len(guard._windows.storage.events) == 10  # type: ignore[attr-defined]


def test_a_password_that_is_not_unicode_is_refused_before_any_work(guarded):
    response = guarded.post("/api/v1/auth/login", content=b'{"email": "root@example.com", '
                            b'"password": "\\ud800"}',
                            headers={"Content-Type": "application/json"})
    assert (response.status_code, code(response)) == (422, "validation_error")
