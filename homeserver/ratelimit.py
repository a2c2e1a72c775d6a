"""Token-bucket rate limiting, in memory, per action and key."""

from __future__ import annotations

import math
import time

from homeserver.config import RateLimit
from homeserver.errors import limit_exceeded


class RateLimiter:
    """One bucket per key: `burst_count` actions at once, refilled at `per_second`."""

    def __init__(self, limit: RateLimit, *, enabled: bool = True) -> None:
        self._rate = limit.per_second
        self._burst = float(limit.burst_count)
        self._enabled = enabled and limit.per_second > 0
        # key -> (tokens left, time of last update)
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> None:
        """Take one token for `key`, or raise 429 M_LIMIT_EXCEEDED with retry_after_ms."""
        if not self._enabled:
            return
        now = time.monotonic()
        tokens, updated = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - updated) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise limit_exceeded(math.ceil((1.0 - tokens) / self._rate * 1000))
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:
            self._forget_full_buckets(now)

    def _forget_full_buckets(self, now: float) -> None:
        """Drop keys whose bucket has refilled: they carry no information."""
        refill = self._burst / self._rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}
