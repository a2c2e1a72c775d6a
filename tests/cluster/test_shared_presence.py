"""Presence in a deployment of two processes behaves as one server's: a user
syncing through one worker is online for everyone and stays online past
the sync timeout, whichever worker serves their polls (even alternating);
activity through one worker counts on the other; they go offline within the
sync timeout once they stop, or once the process holding their sync is
killed; a status set through one worker is what the other answers.

The sync timeout is shortened through the config (`presence.sync_timeout_ms`)
so that the timers run in seconds; one deployment serves the whole module."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import attrs
import pytest

from tests.cluster.deployment import ALL_ROLES, DeploymentClient, deployment, until
from tests.conftest import PostgresServer

SYNC_TIMEOUT_S = 2.0
# "a" only reads; "b" has every role, so the presence-timeouts lease is b's
# and killing a leaves the sweeper running.
ROLES = {"a": ["client"], "b": list(ALL_ROLES)}
_names = itertools.count()


@attrs.frozen
class User:
    user_id: str
    token: str


@attrs.frozen
class Presence:
    """The deployment, and a room that bob shares with everyone: bob looks
    at their presence through either worker."""

    cluster: DeploymentClient
    bob: User
    room_id: str

    async def user(self) -> User:
        """A new user, joined to bob's room."""
        name = f"user{next(_names)}"
        token = await self.cluster.register("b", name)
        user = User(f"@{name}:localhost", token)
        room = quote(self.room_id)
        status, body = await self.cluster.call(
            "b", "POST", f"/rooms/{room}/invite", self.bob.token, {"user_id": user.user_id}
        )
        assert status == 200, body
        status, body = await self.cluster.call("b", "POST", f"/join/{room}", token, {})
        assert status == 200, body
        return user

    async def seen(self, worker: str, user: User) -> dict[str, Any]:
        """The user's presence as bob gets it from `worker`."""
        status, body = await self.cluster.call(
            worker, "GET", f"/presence/{quote(user.user_id)}/status", self.bob.token
        )
        assert status == 200, body
        return body

    async def states(self, user: User) -> tuple[str, str]:
        return (await self.seen("a", user))["presence"], (await self.seen("b", user))["presence"]

    async def sync(
        self, worker: str, user: User, since: str | None, timeout_ms: int = 300
    ) -> str | None:
        """One /sync poll (online) through `worker`; its next_batch."""
        query = f"?timeout={timeout_ms}&set_presence=online" + (f"&since={since}" if since else "")
        status, body = await self.cluster.call(worker, "GET", f"/sync{query}", user.token)
        assert status == 200, body
        return body["next_batch"]

    async def keep_syncing(self, workers: list[str], user: User, for_s: float) -> None:
        """Poll after poll for `for_s`, through `workers` in turn, checking
        on the way that both workers always show the user online."""
        since = await self.sync(workers[0], user, None)

        async def online() -> bool:
            return await self.states(user) == ("online", "online")

        # The other worker may serve its cached row until the invalidation
        # of the first sync's write arrives (a round trip).
        await until(online, 2)
        deadline = time.monotonic() + for_s
        for worker in itertools.cycle(workers):
            if time.monotonic() > deadline:
                return
            since = await self.sync(worker, user, since)
            assert await self.states(user) == ("online", "online")


async def offline_within(presence: Presence, user: User, within_s: float) -> float:
    """Seconds until both workers show the user offline (at most `within_s`)."""
    started = time.monotonic()

    async def offline() -> bool:
        return await presence.states(user) == ("offline", "offline")

    await until(offline, within_s)
    return time.monotonic() - started


@pytest.fixture(scope="module")
async def module_database(postgres: PostgresServer, template_db: str) -> AsyncIterator[str]:
    name = f"hs_test_{os.getpid()}_presence"
    conn = await asyncpg.connect(postgres.admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    finally:
        await conn.close()
    yield postgres.dsn(name)
    conn = await asyncpg.connect(postgres.admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def presence(
    module_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Presence]:
    data: Path = tmp_path_factory.mktemp("presence") / "data"
    running = deployment(
        module_database,
        data,
        ROLES,
        presence={"sync_timeout_ms": int(SYNC_TIMEOUT_S * 1000)},
    )
    await running.start(*ROLES)
    try:
        async with aiohttp.ClientSession() as http:
            cluster = DeploymentClient(http, running, module_database)
            token = await cluster.register("b", "bob")
            status, body = await cluster.call("b", "POST", "/createRoom", token, {})
            assert status == 200, body
            yield Presence(cluster, User("@bob:localhost", token), body["room_id"])
    finally:
        await running.stop()


async def test_syncing_on_one_worker_stays_online_everywhere(presence: Presence):
    alice = await presence.user()
    # Activity through b first: b knows alice, yet does not time her out
    # while her syncs are a's.
    status, body = await presence.cluster.call(
        "b",
        "PUT",
        f"/rooms/{quote(presence.room_id)}/typing/{quote(alice.user_id)}",
        alice.token,
        {"typing": True, "timeout": 1000},
    )
    assert status == 200, body
    await presence.keep_syncing(["a"], alice, for_s=2 * SYNC_TIMEOUT_S)
    seen = await presence.seen("b", alice)
    assert seen["presence"] == "online" and seen["currently_active"] is True


async def test_alternating_polls_stay_online_then_offline_when_stopped(presence: Presence):
    alice = await presence.user()
    await presence.keep_syncing(["a", "b"], alice, for_s=2 * SYNC_TIMEOUT_S)
    # No more polls: offline for both within the sync timeout (plus a
    # report's and a sweep's interval), and not before the timeout.
    took = await offline_within(presence, alice, SYNC_TIMEOUT_S + 3)
    assert took > SYNC_TIMEOUT_S / 2, took


async def test_status_set_through_one_worker_is_seen_on_the_other(presence: Presence):
    carol = await presence.user()
    since = await presence.sync("a", carol, None)
    assert (await presence.seen("a", carol))["presence"] == "online"
    status, body = await presence.cluster.call(
        "b",
        "PUT",
        f"/presence/{quote(carol.user_id)}/status",
        carol.token,
        {"presence": "unavailable", "status_msg": "lunch"},
    )
    assert status == 200, body

    # a, whose last sync made carol online, answers what b set.
    async def away_on_a() -> dict[str, Any] | None:
        seen = await presence.seen("a", carol)
        return seen if seen["presence"] == "unavailable" else None

    seen = await until(away_on_a, 5)
    assert seen["status_msg"] == "lunch"
    # And her next sync through a (set_presence online) brings her back.
    await presence.sync("a", carol, since)

    async def back_on_b() -> dict[str, Any] | None:
        seen = await presence.seen("b", carol)
        return seen if seen["presence"] == "online" else None

    assert (await until(back_on_b, 5))["status_msg"] == "lunch"


async def test_activity_through_one_worker_counts_on_the_other(presence: Presence):
    """Dave does not sync: his status, set through b, would time out after
    the sync timeout; typing through a keeps him active for the sweeper."""
    dave = await presence.user()
    status, body = await presence.cluster.call(
        "b", "PUT", f"/presence/{quote(dave.user_id)}/status", dave.token, {"presence": "online"}
    )
    assert status == 200, body
    deadline = time.monotonic() + 2 * SYNC_TIMEOUT_S
    while time.monotonic() < deadline:
        status, body = await presence.cluster.call(
            "a",
            "PUT",
            f"/rooms/{quote(presence.room_id)}/typing/{quote(dave.user_id)}",
            dave.token,
            {"typing": True, "timeout": 1000},
        )
        assert status == 200, body
        assert await presence.states(dave) == ("online", "online")
        await asyncio.sleep(0.3)
    await offline_within(presence, dave, SYNC_TIMEOUT_S + 3)


async def test_killed_worker_leaves_no_one_online(presence: Presence):
    """Last in the module: it kills a."""
    erin = await presence.user()

    async def poll_on_a() -> None:
        """Long polls on a, one after the other (others' presence ends some)."""
        since = None
        while True:
            since = await presence.sync("a", erin, since, timeout_ms=30_000)

    # Erin is online while her polls last.
    poll = asyncio.create_task(poll_on_a())
    await asyncio.sleep(SYNC_TIMEOUT_S * 1.5)
    assert not poll.done()
    assert (await presence.seen("b", erin))["presence"] == "online"

    await presence.cluster.cluster.kill("a")
    with contextlib.suppress(aiohttp.ClientError):
        await poll

    async def offline_on_b() -> bool:
        return (await presence.seen("b", erin))["presence"] == "offline"

    started = time.monotonic()
    await until(offline_on_b, SYNC_TIMEOUT_S + 3)
    assert time.monotonic() - started <= SYNC_TIMEOUT_S + 3
