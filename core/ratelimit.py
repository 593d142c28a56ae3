"""Abuse limits on the `limits` library: moving windows (``RateLimiter``: conversations per
client address, messages per conversation) and windows of failed logins (``LoginGuard``: per
account and per address), keyed by ``client_address`` where the key is the caller.

Storage (``PARLEY_RATE_LIMIT_URL``, see ``storage_url``): in process by default, with bounded
memory (the least recently used keys are forgotten first); ``redis://…`` shares the counts
between API processes. When Redis does not answer, requests are let through (fail open) with
a warning in the log, and Redis is not asked again for a few seconds.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection
from typing import cast

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import HTTPConnection

from core.config import Settings
from core.errors import TooManyRequests

logger = logging.getLogger(__name__)

MEMORY = "memory://"
_REDIS_TIMEOUT_S = 0.5  # a Redis that does not answer within this is treated as down
_RETRY_REDIS_AFTER_S = 5.0  # after a failure, requests pass without asking Redis this long


def client_address(request: HTTPConnection, trusted_proxies: Collection[str]) -> str:
    """The client's address; behind a proxy listed in ``PARLEY_TRUSTED_PROXIES``, the last
    address that proxy saw in X-Forwarded-For."""
    peer = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and peer in trusted_proxies:
        return forwarded.split(",")[-1].strip() or peer
    return peer


def storage_url(settings: Settings) -> str:
    """``PARLEY_RATE_LIMIT_URL``; unset, ``PARLEY_STREAM_URL`` when that is Redis, else in
    process (``memory://``)."""
    url = settings.rate_limit_url or (
        settings.stream_url if settings.stream_url.startswith(("redis://", "rediss://")) else "")
    return MEMORY if url in ("", "local", "memory", MEMORY) else url


class BoundedMemoryStorage(MemoryStorage):
    """limits' in-process storage, holding at most ``max_keys`` moving windows (the least
    recently used go first). An entry leaves its window at exactly ``expiry`` seconds: limits'
    memory backend counts that instant as inside when acquiring and outside when reading."""

    def __init__(self, max_keys: int) -> None:
        super().__init__()
        self.max_keys = max_keys

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        with self.locks[key]:
            if key in self.events:  # most recently used last
                self.events[key] = self.events.pop(key)
            acquired = super().acquire_entry(key, limit, expiry - 1e-6, amount)  # type: ignore[arg-type]
        while len(self.events) > self.max_keys:
            oldest = next(iter(self.events))
            with self.locks[oldest]:
                self.clear(oldest)
        return acquired


class _Windows:
    """One storage and the moving-window strategy over it, failing open when it is down."""

    def __init__(self, url: str, *, prefix: str, max_keys: int) -> None:
        self.url = url
        self.storage: Storage = (
            BoundedMemoryStorage(max_keys) if url == MEMORY else
            cast(Storage, storage_from_string(url, key_prefix=f"{prefix}:limits",
                                              wrap_exceptions=True,
                                              socket_connect_timeout=_REDIS_TIMEOUT_S,
                                              socket_timeout=_REDIS_TIMEOUT_S)))
        self.strategy = MovingWindowRateLimiter(self.storage)
        self._down_until = 0.0

    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, exc: StorageError) -> None:
        self._down_until = time.monotonic() + _RETRY_REDIS_AFTER_S
        logger.warning("rate-limit storage unavailable, letting requests through for %.0f s: %s",
                       _RETRY_REDIS_AFTER_S, exc.storage_error)

    def wait(self, item: RateLimitItem, key: str, now: float, cost: int = 1) -> float:
        """0 when ``cost`` more fits in ``key``'s window, else the seconds until it would."""
        reset, remaining = self.strategy.get_window_stats(item, key)
        return 0.0 if remaining >= cost else max(reset - now, 1e-3)


class RateLimiter:
    """``burst`` requests at once and ``per_minute`` a minute on average, per key: a moving
    window of ``burst`` requests over ``burst / per_minute`` minutes."""

    def __init__(self, *, per_minute: float, burst: int, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.time, url: str = MEMORY,
                 prefix: str = "parley", name: str = "rate") -> None:
        window_s = burst * 60.0 / per_minute if per_minute > 0 else 10 * 365 * 86_400.0
        self.item = RateLimitItemPerSecond(burst, max(1, round(window_s)), namespace=name)
        self.clock = clock
        self._windows = _Windows(url, prefix=prefix, max_keys=max_keys)

    def retry_after(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost``; 0 when allowed, else the seconds until it would be."""
        windows, amount = self._windows, max(1, math.ceil(cost))
        if not windows.available():
            return 0.0
        try:
            if windows.strategy.hit(self.item, key, cost=amount):
                return 0.0
            return windows.wait(self.item, key, self.clock(), amount)
        except StorageError as exc:
            windows.failed(exc)
            return 0.0

    def check(self, key: str, what: str) -> None:
        """Raise 429 (with Retry-After) when ``key`` is over its limit."""
        wait = self.retry_after(key)
        if wait > 0:
            raise TooManyRequests(f"Too many {what}; try again in {wait:.0f} s.",
                                  retry_after=wait)


LEVELS = 5  # of growing lockout: 1, 3, 9, 27 and 81 windows (15 min: up to ~20 h)


class LoginGuard:
    """Failed logins counted per account and per client address over a moving window; past
    either limit every attempt (right or wrong) answers 429 ``too_many_attempts`` with
    Retry-After, until the oldest counted failure leaves the window. The lockout grows: the
    k-th level allows ``k + 1`` times the limit over ``3 ** k`` windows (``LEVELS`` of them),
    so a second round of failures after the first lockout locks for about twice as long, a
    third for six times, up to a day. A successful login clears its account's counts (not its
    address's).

    An attempt counts against its account from the moment it is let through until it
    succeeds, so concurrent attempts cannot all pass the check; it counts against its address
    once it has failed (``failed``). Unknown accounts are counted exactly like real ones, so
    neither the lockout nor its timing tells whether an account exists. With Redis the counts
    are shared by every API process.
    """

    def __init__(self, *, per_account: int = 5, per_address: int = 20, window_s: float = 900.0,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.time,
                 url: str = MEMORY, prefix: str = "parley") -> None:
        self.per_account, self.per_address, self.window_s = per_account, per_address, window_s
        window = max(1, round(window_s))

        def levels(limit: int, name: str) -> list[RateLimitItem]:
            return [RateLimitItemPerSecond(limit * (k + 1), window * 3 ** k,
                                           namespace=f"{name}-{k}") for k in range(LEVELS)]

        self._account = levels(per_account, "login-account")
        self._address = levels(per_address, "login-address")
        self.clock = clock
        self._windows = _Windows(url, prefix=prefix, max_keys=max_keys)

    def _locked(self, now: float, *checks: tuple[list[RateLimitItem], str]) -> float:
        return max(self._windows.wait(item, key, now) for items, key in checks for item in items)

    def attempt(self, *, account: str, address: str) -> float:
        """Let an attempt through (429 when over a limit) and count it; returns its time."""
        now, windows = self.clock(), self._windows
        if not windows.available():
            return now
        try:
            wait = self._locked(now, (self._account, account), (self._address, address))
            if wait <= 0 and not all([windows.strategy.hit(item, account)
                                      for item in self._account]):
                wait = self._locked(now, (self._account, account))  # lost a race
        except StorageError as exc:
            windows.failed(exc)
            return now
        if wait > 0:
            raise TooManyRequests(f"Too many failed logins; try again in {wait:.0f} s.",
                                  retry_after=wait, code="too_many_attempts")
        return now

    def failed(self, *, account: str, address: str) -> None:
        """The attempt failed: it counts against its address too."""
        windows = self._windows
        if windows.available():
            try:
                for item in self._address:
                    windows.strategy.hit(item, address)
            except StorageError as exc:
                windows.failed(exc)

    def succeeded(self, *, account: str, address: str, at: float) -> None:
        """The attempt made ``at`` succeeded: the account starts afresh (the address never
        counted it)."""
        windows = self._windows
        if windows.available():
            try:
                for item in self._account:
                    windows.strategy.clear(item, account)
            except StorageError as exc:
                windows.failed(exc)
