"""Token buckets for abuse limits: conversations per client address, messages per
conversation, failed logins per account.

In-process (one API process keeps its own buckets); with several API processes each enforces
its share. Memory is bounded: the least recently used keys are forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from core.errors import TooManyRequests


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
