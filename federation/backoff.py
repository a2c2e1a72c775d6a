"""Per-destination backoff: a server that stops answering is retried later and
later (exponentially), so that one dead server costs little; a good answer
resets it. During the first hour of an outage the waits stay short: a server
that went away recently is most likely restarting or being upgraded, and it
should be caught up within a minute of its return, not an hour later. Kept in PostgreSQL so that restarts remember, cached in memory so
that the check costs no query on the hot path."""

from __future__ import annotations

import random
from collections.abc import Callable

from storage.database import now_ms
from storage.destinations import DestinationRetry, DestinationStore

MIN_RETRY_INTERVAL_MS = 30_000
MAX_RETRY_INTERVAL_MS = 24 * 3600 * 1000
RETRY_MULTIPLIER = 2
# While an outage is younger than this, the wait is at most RECENT_OUTAGE_MAX_INTERVAL_MS.
RECENT_OUTAGE_MS = 3600 * 1000
RECENT_OUTAGE_MAX_INTERVAL_MS = 45_000


class Backoff:
    def __init__(
        self,
        store: DestinationStore,
        *,
        clock: Callable[[], int] = now_ms,
        min_interval_ms: int = MIN_RETRY_INTERVAL_MS,
        max_interval_ms: int = MAX_RETRY_INTERVAL_MS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._min = min_interval_ms
        self._max = max_interval_ms
        self._known: dict[str, DestinationRetry | None] = {}

    async def _get(self, destination: str) -> DestinationRetry | None:
        if destination not in self._known:
            self._known[destination] = await self._store.get(destination)
        return self._known[destination]

    async def retry_at(self, destination: str) -> int | None:
        """When `destination` may be tried again, or None if it may be tried now."""
        retry = await self._get(destination)
        if retry is None or retry.retry_interval_ms == 0:
            return None
        at = retry.retry_last_ts + retry.retry_interval_ms
        return at if at > self._clock() else None

    async def failed(self, destination: str) -> None:
        """Record a failure: the next try waits longer than the last one did."""
        retry = await self._get(destination)
        now = self._clock()
        if retry is None or retry.retry_interval_ms == 0:
            interval = self._min
            failure_ts = now
        else:
            interval = min(retry.retry_interval_ms * RETRY_MULTIPLIER, self._max)
            failure_ts = retry.failure_ts if retry.failure_ts is not None else now
        # Jitter, so that servers that went down together are not retried together.
        interval = min(int(interval * random.uniform(0.9, 1.1)), self._max)
        if now - failure_ts < RECENT_OUTAGE_MS:
            interval = min(interval, max(self._min, RECENT_OUTAGE_MAX_INTERVAL_MS))
        new = DestinationRetry(destination, failure_ts, now, interval)
        self._known[destination] = new
        await self._store.set(new)

    async def succeeded(self, destination: str) -> None:
        """Record a good answer: the destination is up, no more waiting."""
        retry = await self._get(destination)
        if retry is None or (retry.retry_interval_ms == 0 and retry.failure_ts is None):
            return
        new = DestinationRetry(destination, None, 0, 0)
        self._known[destination] = new
        await self._store.set(new)
