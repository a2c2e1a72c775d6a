"""Leases between processes: two pools on one database stand for two
processes of a deployment; a session ended by PostgreSQL stands for a
process that died (its connection closes, as under SIGKILL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from homeserver.cluster.lease import LeasedDuty
from storage import leases
from storage.database import create_pool

FAST = {"retry_s": 0.1, "check_s": 0.1}


class Duty:
    """What a duty's start and stop did, in order."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.running = False

    def start(self) -> None:
        self.log.append("start")
        self.running = True

    async def stop(self) -> None:
        self.log.append("stop")
        self.running = False


@pytest.fixture
async def pools(database: str) -> AsyncIterator[Callable[[], asyncpg.Pool]]:
    opened: list[asyncpg.Pool] = []

    async def make() -> asyncpg.Pool:
        pool = await create_pool(database, min_size=1, max_size=3)
        opened.append(pool)
        return pool

    yield make  # type: ignore[misc]
    for pool in opened:
        await pool.close()


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    for _ in range(int(within_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not within time")


async def test_one_holder_and_takeover_when_it_dies(pools):
    first_pool, second_pool = await pools(), await pools()
    first, second = Duty(), Duty()
    a = LeasedDuty(first_pool, "purge", first.start, first.stop, **FAST)
    b = LeasedDuty(second_pool, "purge", second.start, second.stop, **FAST)
    a.start()
    await asyncio.wait_for(a.held.wait(), 5)
    b.start()
    await asyncio.sleep(0.5)  # several asks of b
    assert first.running and not second.running
    holder = await leases.holder(second_pool, "purge")
    assert holder is not None

    # The holder's session ends, as when its process is killed.
    assert await second_pool.fetchval("SELECT pg_terminate_backend($1)", holder)
    await until(lambda: second.running)
    await until(lambda: not first.running)
    assert await leases.holder(second_pool, "purge") not in (None, holder)
    assert second.log == ["start"]
    assert first.log == ["start", "stop"]
    await a.stop()
    await b.stop()
    assert second.log == ["start", "stop"]


async def test_stopping_hands_over_and_names_are_apart(pools):
    pool_a, pool_b = await pools(), await pools()
    first, second, other = Duty(), Duty(), Duty()
    a = LeasedDuty(pool_a, "background", first.start, first.stop, **FAST)
    b = LeasedDuty(pool_b, "background", second.start, second.stop, **FAST)
    c = LeasedDuty(pool_b, "federation-sender-0", other.start, other.stop, **FAST)
    a.start()
    await asyncio.wait_for(a.held.wait(), 5)
    b.start()
    c.start()
    # Another name is not held by anyone: taken at once beside the first.
    await asyncio.wait_for(c.held.wait(), 5)
    assert other.running and not second.running
    await a.stop()
    assert first.log == ["start", "stop"]
    await until(lambda: second.running)
    await b.stop()
    await c.stop()
    assert await leases.holder(pool_a, "background") is None
    assert await leases.holder(pool_a, "federation-sender-0") is None


async def test_holder_stops_its_duty_when_the_database_drops_it(pools):
    """A holder whose session is cut stops the duty (no second runner side
    by side) and takes it again once it can."""
    pool = await pools()
    duty = Duty()
    lease = LeasedDuty(pool, "solo", duty.start, duty.stop, **FAST)
    lease.start()
    await asyncio.wait_for(lease.held.wait(), 5)
    holder = await leases.holder(pool, "solo")
    await pool.fetchval("SELECT pg_terminate_backend($1)", holder)
    await until(lambda: duty.log[:3] == ["start", "stop", "start"])
    assert duty.running
    await lease.stop()
    assert not duty.running
