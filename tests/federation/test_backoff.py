"""Backoff over an outage: short waits while it is recent, growing ones later."""

from __future__ import annotations

from federation.backoff import RECENT_OUTAGE_MAX_INTERVAL_MS, RECENT_OUTAGE_MS, Backoff
from storage.destinations import DestinationStore
from tests.conftest import RunningServer


async def test_a_recent_outage_is_retried_within_a_minute_a_long_one_less_often(
    hs: RunningServer,
) -> None:
    now = [1_000_000_000]
    backoff = Backoff(DestinationStore(hs.pool), clock=lambda: now[0], min_interval_ms=30_000)
    waits = []
    while now[0] - 1_000_000_000 < 3 * RECENT_OUTAGE_MS:
        await backoff.failed("down.example")
        retry_at = await backoff.retry_at("down.example")
        assert retry_at is not None
        waits.append((now[0] - 1_000_000_000, retry_at - now[0]))
        now[0] = retry_at
        assert await backoff.retry_at("down.example") is None

    early = [wait for since, wait in waits if since < RECENT_OUTAGE_MS]
    late = [wait for since, wait in waits if since >= RECENT_OUTAGE_MS]
    assert 27_000 <= early[0] <= 33_000
    assert max(early) <= RECENT_OUTAGE_MAX_INTERVAL_MS
    # After the first hour the waits grow again, doubling each time.
    assert late[1] > 1.6 * late[0] and late[2] > 1.6 * late[1]

    # The destination answers: it is no longer backed off, and a new outage starts short.
    await backoff.succeeded("down.example")
    assert await backoff.retry_at("down.example") is None
    await backoff.failed("down.example")
    assert (await backoff.retry_at("down.example")) - now[0] <= 33_000
