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
        # key -> (per_second, burst) set by an admin; per_second 0 means unlimited.
        self._overrides: dict[str, tuple[float, float]] = {}

    def set_override(self, key: str, per_second: float, burst_count: int) -> None:
        """Give one key its own limit (the admin API's override_ratelimit)."""
        self._overrides[key] = (per_second, float(burst_count))
        self._buckets.pop(key, None)

    def clear_override(self, key: str) -> None:
        self._overrides.pop(key, None)
        self._buckets.pop(key, None)

    def clear_overrides(self) -> None:
        for key in self._overrides:
            self._buckets.pop(key, None)
        self._overrides.clear()

    def check(self, key: str) -> None:
        """Take one token for `key`, or raise 429 M_LIMIT_EXCEEDED with retry_after_ms."""
        rate, burst = self._overrides.get(key, (self._rate, self._burst))
        if not self._enabled or rate <= 0:
            return
        now = time.monotonic()
        tokens, updated = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - updated) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise limit_exceeded(math.ceil((1.0 - tokens) / rate * 1000))
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:
            self._forget_full_buckets(now)

    def _forget_full_buckets(self, now: float) -> None:
        """Drop keys whose bucket has refilled: they carry no information."""
        refill = self._burst / self._rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}
