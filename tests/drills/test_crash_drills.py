"""Crash drills: the server killed with SIGKILL, and PostgreSQL restarted, both
in the middle of a send load. What a client was told is true afterwards:
every acknowledged message is in the room once, with the event id it got,
and a retried transaction id answers that same event id."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.drills.conftest import new_user
from tests.drills.load import SendLoad, check_books

pytestmark = pytest.mark.drills

WORKERS = 8


async def wait_for_acks(load: SendLoad, count: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while load.acknowledged_count() < count:
        assert time.monotonic() < deadline, f"only {load.acknowledged_count()} sends acknowledged"
        await asyncio.sleep(0.05)


async def test_kill_9_under_send_load(homeserver_process, http: aiohttp.ClientSession) -> None:
    server = await homeserver_process()
    alice = await new_user(http, server, "alice")
    room_id = await alice.create_room()
    for round_ in range(2):
        load = SendLoad(alice, room_id, WORKERS, tag=f"kill{round_}")
        load.start()
        await wait_for_acks(load, 300)
        server.kill()
        acked_before_kill = load.acknowledged_count()
        await asyncio.sleep(0.5)
        await server.start()
        await wait_for_acks(load, acked_before_kill + 100)
        await load.stop()
        await load.settle()
        total = await check_books(load, alice)
        print(f"round {round_}: {total} acknowledged sends, {acked_before_kill} before the kill")


async def test_postgres_restart_under_send_load(
    homeserver_process, drill_postgres, http: aiohttp.ClientSession
) -> None:
    server = await homeserver_process()
    alice = await new_user(http, server, "alice")
    room_id = await alice.create_room()
    load = SendLoad(alice, room_id, WORKERS, tag="pg")
    load.start()
    await wait_for_acks(load, 300)
    await asyncio.to_thread(drill_postgres.stop_now)
    await asyncio.sleep(3)
    await asyncio.to_thread(drill_postgres.start_again)
    back = time.monotonic()
    acked_at_return = load.acknowledged_count()
    # The server finds the database again by itself: sends succeed soon after.
    await wait_for_acks(load, acked_at_return + 1, within=30)
    recovered_in = time.monotonic() - back
    await wait_for_acks(load, acked_at_return + 300, within=30)
    await load.stop()
    await load.settle()
    assert server.running, server.log_tail()
    total = await check_books(load, alice)
    print(
        f"{total} acknowledged sends; recovered {recovered_in:.1f} s after PostgreSQL came back;"
        f" slowest request {load.books.slowest:.1f} s"
    )
