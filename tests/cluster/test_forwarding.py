"""Room writes at the room's owner, and caches kept true, across the worker
processes of one deployment (cluster/forwarding.py, cluster/owners.py,
cluster/invalidation.py): real processes on one database, each client
request sent to a chosen worker's own listener. The owner's death mid-load
is test_deployment_flows.py's."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.cluster.deployment import ALL_ROLES, DeploymentClient, deployment, until

ROLES = {"p1": list(ALL_ROLES), "p2": ["client", "event_persister"]}
PERSISTERS = ["p1", "p2"]


@pytest.fixture
async def cluster(database: str, tmp_path: Path) -> Any:
    running = deployment(database, tmp_path / "data", ROLES)
    await running.start("p1", "p2")
    try:
        async with aiohttp.ClientSession() as http:
            yield DeploymentClient(http, running, database)
    finally:
        await running.stop()


async def test_writes_at_the_owner_and_caches_kept_true(cluster):
    """One deployment for several checks: starting one costs seconds."""
    alice = await cluster.register("p1", "alice")
    bob = await cluster.register("p1", "bob")
    room_id = await cluster.room_owned_by("p2", "p1", alice, PERSISTERS)
    taken = (await cluster.cluster.status("p2"))["forwarded_sends_taken"]

    # A send through p1 runs at p2, the owner.
    first = await cluster.send("p1", alice, room_id, "hello", "txn-1")
    assert (await cluster.cluster.status("p2"))["forwarded_sends_taken"] == taken + 1
    # The same transaction again, through either process: the same event.
    assert await cluster.send("p1", alice, room_id, "hello", "txn-1") == first
    assert await cluster.send("p2", alice, room_id, "hello", "txn-1") == first
    assert await cluster.bodies("p1", alice, room_id) == ["hello"]

    # The owner's refusal reaches the client: Bob is no member.
    status, body = await cluster.call(
        "p1", "PUT", f"/rooms/{room_id}/send/m.room.message/t", bob, {"body": "x"}
    )
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"

    # Forwarded and local sends interleave in one order, each once.
    sends = [
        cluster.send("p1" if i % 2 else "p2", alice, room_id, f"m{i}", f"t{i}") for i in range(30)
    ]
    await asyncio.gather(*sends)
    bodies = await cluster.bodies("p1", alice, room_id)
    assert sorted(bodies) == sorted(["hello"] + [f"m{i}" for i in range(30)])
    assert await cluster.bodies("p2", alice, room_id) == bodies

    # A logout through p1 ends the token that p2 has cached.
    status, _ = await cluster.call("p2", "GET", "/account/whoami", bob)
    assert status == 200
    status, _ = await cluster.call("p1", "POST", "/logout", bob, {})
    assert status == 200

    async def refused() -> bool:
        status, body = await cluster.call("p2", "GET", "/account/whoami", bob)
        return status == 401 and body["errcode"] == "M_UNKNOWN_TOKEN"

    await until(refused, 5)

    # A shadow ban set through p1 (an admin request) holds in p2: Carol's
    # send through p2 is answered, but nothing is stored.
    carol = await cluster.register("p1", "carol")
    status, _ = await cluster.call("p2", "POST", f"/rooms/{room_id}/join", carol, {})
    assert status == 200
    conn = await asyncpg.connect(cluster.database)
    try:
        await conn.execute("UPDATE users SET admin = TRUE WHERE user_id = '@alice:localhost'")
    finally:
        await conn.close()
    url = f"http://{cluster.cluster.workers['p1'].client}/_synapse/admin/v1/users/"
    async with cluster.http.post(
        url + "@carol:localhost/shadow_ban", headers={"Authorization": f"Bearer {alice}"}
    ) as resp:
        assert resp.status == 200, await resp.text()

    async def banned_in_p2() -> bool:
        body = "unseen-" + secrets.token_hex(8)
        await cluster.send("p2", carol, room_id, body, body)
        return body not in await cluster.bodies("p1", alice, room_id)

    await until(banned_in_p2, 5)
    bodies = await cluster.bodies("p1", alice, room_id)

    # The internal API wants the shared secret.
    internal = cluster.cluster.workers["p2"].internal
    url = f"http://{internal}/_homeserver/internal/v1/send_event"
    forged = {"room_id": room_id, "type": "m.room.message", "sender": "@alice:localhost"}
    for headers in ({}, {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}):
        async with cluster.http.post(url, json={**forged, "content": {}}, headers=headers) as resp:
            assert resp.status == 401
    assert await cluster.bodies("p1", alice, room_id) == bodies
