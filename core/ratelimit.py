"""Abuse limits: token buckets (``RateLimiter``: conversations per client address, messages
per conversation) and a sliding window of failed logins (``LoginGuard``: per account and per
address), keyed by ``client_address`` where the key is the caller.

In-process (one API process keeps its own counts); with several API processes each enforces
its share. Memory is bounded: the least recently used keys are forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection

from starlette.requests import HTTPConnection

from core.errors import TooManyRequests


def client_address(request: HTTPConnection, trusted_proxies: Collection[str]) -> str:
    """The client's address; behind a proxy listed in ``PARLEY_TRUSTED_PROXIES``, the last
    address that proxy saw in X-Forwarded-For."""
    peer = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and peer in trusted_proxies:
        return forwarded.split(",")[-1].strip() or peer
    return peer


class RateLimiter:
    """``burst`` requests at once, refilled at ``per_minute`` a minute, per key."""

    def __init__(self, *, per_minute: float, burst: int, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def retry_after(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; 0 when allowed, else the seconds until it would be."""
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= cost:
            tokens -= cost
        else:
            wait = (cost - tokens) / self.rate if self.rate > 0 else float("inf")
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    def check(self, key: str, what: str) -> None:
        """Raise 429 (with Retry-After) when ``key`` is over its limit."""
        wait = self.retry_after(key)
        if wait > 0:
            raise TooManyRequests(f"Too many {what}; try again in {wait:.0f} s.",
                                  retry_after=wait)


class LoginGuard:
    """Failed logins counted per account and per client address over a sliding window;
    past either limit every attempt (right or wrong) answers 429 ``too_many_attempts`` with
    Retry-After, until the oldest counted failure leaves the window. A successful login clears
    its account's count (not its address's).

    An attempt counts as failed from the moment it is let through until it succeeds, so
    concurrent attempts cannot all pass the check. Unknown accounts are counted exactly like
    real ones, so neither the lockout nor its timing tells whether an account exists.
    In-process: each API process keeps its own counts, so with N processes an attacker gets up
    to N times the limits. Memory is bounded: the least recently failed keys go first.
    """

    def __init__(self, *, per_account: int = 5, per_address: int = 20, window_s: float = 900.0,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_account, self.per_address = per_account, per_address
        self.window_s, self.max_keys, self.clock = window_s, max_keys, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _wait(self, key: str, limit: int, now: float) -> float:
        failures = self._failures.get(key)
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)
            return 0.0
        return failures[0] + self.window_s - now if len(failures) >= limit else 0.0

    def attempt(self, *, account: str, address: str) -> float:
        """Let an attempt through (429 when over a limit) and count it; returns its time."""
        now = self.clock()
        keys = ((f"account:{account}", self.per_account),
                (f"address:{address}", self.per_address))
        wait = max(self._wait(key, limit, now) for key, limit in keys)
        if wait > 0:
            raise TooManyRequests(f"Too many failed logins; try again in {wait:.0f} s.",
                                  retry_after=wait, code="too_many_attempts")
        for key, limit in keys:
            failures = self._failures.pop(key, None) or deque(maxlen=limit)
            failures.append(now)
            self._failures[key] = failures
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)
        return now

    def succeeded(self, *, account: str, address: str, at: float) -> None:
        """The attempt made ``at`` succeeded: the account starts afresh, and the address's
        count no longer holds it."""
        self._failures.pop(f"account:{account}", None)
        failures = self._failures.get(f"address:{address}")
        if failures is not None and at in failures:
            failures.remove(at)
