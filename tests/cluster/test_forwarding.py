"""Room writes at the room's owner, and caches kept true, across the worker
processes of one deployment (cluster/forwarding.py, cluster/write_ops.py,
cluster/owners.py, cluster/invalidation.py): real processes on one database,
each client request sent to a chosen worker's own listener, and a scripted
remote server (tests/federation) talking to the worker that owns nothing.
The owner's death mid-load is test_deployment_flows.py's."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import asyncpg
import attrs
import pytest

from homeserver.cluster.roles import owner_of
from tests.cluster.deployment import ALL_ROLES, DeploymentClient, deployment, until
from tests.federation.conftest import ScriptedRemote
from tests.federation.hosted_room import HostedRoom
from tests.federation.remote_room import RemoteRoom
from tests.federation.test_backfill import serve_backfill

# w answers clients and federation and owns no room: every room write it
# takes runs at p1 or p2.
ROLES = {
    "p1": [r for r in ALL_ROLES if r != "federation_inbound"],
    "p2": ["client", "event_persister"],
    "w": ["client", "federation_inbound"],
}
PERSISTERS = ["p1", "p2"]
INTERNAL = "/_homeserver/internal/v1"


@attrs.define
class Setup:
    client: DeploymentClient
    remote: ScriptedRemote
    # A room on the remote that a local user joins through w.
    hosted: HostedRoom
    # The remote's view of w, for the tests/federation helpers.
    w: Any
    # Another remote, that goes away after its invite.
    fleeting: ScriptedRemote


@pytest.fixture
async def cluster(database: str, tmp_path: Path) -> Any:
    running = deployment(database, tmp_path / "data", ROLES)
    remote, fleeting = ScriptedRemote(tmp_path, "r1"), ScriptedRemote(tmp_path, "r2")
    hosted = HostedRoom(remote, "10")
    hosted.serve()
    # Its history before our join, and /send for p1's federation sender.
    serve_backfill(hosted)
    await remote.start()
    await fleeting.start()
    await running.start("p1", "p2", "w")

    async def settled() -> bool:
        """Every process sees both persisters up (each looks every second)."""
        found = await asyncio.gather(*(running.status(n) for n in ROLES))
        return all(s["persisters_up"] == PERSISTERS for s in found)

    port = int((running.workers["w"].federation or "").rsplit(":", 1)[1])
    w = SimpleNamespace(
        server=SimpleNamespace(
            federation_port=port, config=SimpleNamespace(server_name="localhost")
        )
    )
    try:
        await until(settled, 10)
        await remote.expect_keys_of(w)
        async with aiohttp.ClientSession() as http:
            yield Setup(DeploymentClient(http, running, database), remote, hosted, w, fleeting)
    finally:
        await running.stop()
        await remote.stop()
        await fleeting.stop()


async def test_room_writes_at_the_owner(cluster: Setup) -> None:
    """One deployment for all the checks: starting one costs seconds."""
    await sends_at_the_owner_and_caches_kept_true(cluster.client)
    dave = await cluster.client.register("w", "dave")
    rooms = [await created_at_the_owner(cluster.client, dave, v) for v in ("10", "12")]
    await federation_at_the_owner(cluster, dave, rooms[1])
    await remote_room_joined_at_the_owner(cluster, dave)
    await bad_writes_refused(cluster.client, dave, rooms[0])


async def taken(client: DeploymentClient) -> dict[str, dict[str, int]]:
    """Each persister's count of forwarded writes it ran, by operation."""
    found = await asyncio.gather(*(client.cluster.status(p) for p in PERSISTERS))
    return {p: s["forwarded_writes_taken"] for p, s in zip(PERSISTERS, found, strict=True)}


def ran_at(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], room_id: str
) -> dict[str, int]:
    """What ran where between two counts: every operation that ran anywhere
    ran at the room's owner (what it counted more), none at the other."""
    owner = owner_of(room_id, PERSISTERS)
    for persister in PERSISTERS:
        if persister != owner:
            assert after[persister] == before[persister], (owner, before, after)
    return {op: n - before[owner][op] for op, n in after[owner].items() if n != before[owner][op]}


async def created_at_the_owner(client: DeploymentClient, token: str, version: str) -> str:
    """createRoom through w: its create event and the rest at the new room's
    owner, known (from room 12) only once the create event is built."""
    before = await taken(client)
    status, body = await client.call(
        "w", "POST", "/createRoom", token, {"preset": "public_chat", "room_version": version}
    )
    assert status == 200, body
    room_id = body["room_id"]
    ran = ran_at(before, await taken(client), room_id)
    assert ran["commit_create"] == 1
    # The creator's join, power levels, join rules, history visibility.
    assert ran["send"] >= 4
    status, create = await client.call("w", "GET", f"/rooms/{room_id}/state/m.room.create", token)
    assert status == 200 and create["room_version"] == version, create
    return room_id


async def timeline_bodies(client: DeploymentClient, token: str, room_id: str) -> list[str]:
    status, body = await client.call("w", "GET", "/sync?timeout=0", token)
    assert status == 200, body
    room = body["rooms"]["join"].get(room_id, {})
    events = room.get("timeline", {}).get("events", [])
    return [e["content"].get("body") for e in events if e["type"] == "m.room.message"]


async def federation_at_the_owner(cluster: Setup, token: str, room_id: str) -> None:
    """The remote's join (send_join) and its PDUs (/send) arrive at w, are
    persisted by the owner, and reach a local user's /sync."""
    client = cluster.client
    before = await taken(client)
    room = await RemoteRoom.join(cluster.w, cluster.remote, room_id)
    message = room.message("hello from afar")
    status, body = await room.send([message])
    assert status == 200 and body["pdus"] == {message.event_id: {}}, body
    ran = ran_at(before, await taken(client), room_id)
    assert ran == {"accept_remote": 1, "receive_remote": 1}

    async def seen() -> bool:
        return "hello from afar" in await timeline_bodies(client, token, room_id)

    await until(seen, 10)


async def remote_room_joined_at_the_owner(cluster: Setup, token: str) -> None:
    """A local user's join (through w) to the remote's room, the history
    before it, and the remote's invite of another local user to a room this
    server is not in, are stored by the room's owner."""
    client, hosted = cluster.client, cluster.hosted
    before = await taken(client)
    status, body = await client.call(
        "w", "POST", f"/join/{hosted.room_id}?server_name={cluster.remote.server_name}", token, {}
    )
    assert status == 200, body
    assert ran_at(before, await taken(client), hosted.room_id) == {"join_remote_room": 1}
    status, body = await client.call("w", "GET", "/sync?timeout=0", token)
    assert status == 200 and hosted.room_id in body["rooms"]["join"], body

    # /messages back past the join: the history the remote backfills.
    before = await taken(client)
    bodies: list[str] = []
    since = ""
    while "hello" not in bodies:
        status, body = await client.call(
            "w", "GET", f"/rooms/{hosted.room_id}/messages?dir=b&limit=5{since}", token
        )
        assert status == 200 and "end" in body, body
        bodies += [e["content"].get("body") for e in body["chunk"]]
        since = f"&from={body['end']}"
    ran = ran_at(before, await taken(client), hosted.room_id)
    assert set(ran) == {"receive_backfilled"}, ran

    # An invite to a room this server is not in: stored out of band; its
    # rejection once the inviting server is gone, too.
    elsewhere = HostedRoom(cluster.fleeting, "12")
    erin = await client.register("w", "erin")
    before = await taken(client)
    status, body, _ = await elsewhere.invite(cluster.w, "@erin:localhost")
    assert status == 200, body
    ran = ran_at(before, await taken(client), elsewhere.room_id)
    assert ran == {"store_out_of_band_member": 1}
    status, body = await client.call("w", "GET", "/sync?timeout=0", erin)
    assert status == 200 and elsewhere.room_id in body["rooms"]["invite"], body
    since = body["next_batch"]
    await cluster.fleeting.stop()
    before = await taken(client)
    status, body = await client.call("w", "POST", f"/rooms/{elsewhere.room_id}/leave", erin, {})
    assert status == 200, body
    assert ran_at(before, await taken(client), elsewhere.room_id) == {"leave_out_of_band": 1}

    async def left() -> bool:
        status, body = await client.call("w", "GET", f"/sync?timeout=0&since={since}", erin)
        assert status == 200, body
        return elsewhere.room_id in body.get("rooms", {}).get("leave", {})

    await until(left, 5)


async def bad_writes_refused(client: DeploymentClient, token: str, room_id: str) -> None:
    """The internal endpoint checks its arguments before anything runs."""
    url = f"http://{client.cluster.workers[owner_of(room_id, PERSISTERS)].internal}{INTERNAL}"
    auth = {"Authorization": f"Bearer {client.cluster.secret}"}
    before = await client.bodies("w", token, room_id)
    send = {"room_id": room_id, "type": "m.room.message", "sender": "@dave:localhost"}
    bad: list[tuple[str, Any, int, str]] = [
        ("send", b"{", 400, "M_NOT_JSON"),
        ("send", [], 400, "M_BAD_JSON"),
        ("send", {**send, "content": "hi"}, 400, "M_BAD_JSON"),
        ("send", {**send, "content": {"body": "x"}, "txn": ["d"]}, 400, "M_BAD_JSON"),
        ("send", {**send, "content": {"body": "x"}, "as": "admin"}, 400, "M_BAD_JSON"),
        ("receive_remote", {"event": {"pdu": {}, "room_version": "10"}}, 400, "M_BAD_JSON"),
        ("receive_remote", {"event": {"pdu": {}, "room_version": "99"}}, 400, "M_BAD_JSON"),
        ("join_remote_room", {"join": None, "state": {}}, 400, "M_BAD_JSON"),
        ("drop_room", {"room_id": room_id}, 404, "M_UNRECOGNIZED"),
    ]
    for op, body, code, errcode in bad:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with client.http.post(f"{url}/room_write/{op}", data=data, headers=auth) as resp:
            assert (resp.status, (await resp.json())["errcode"]) == (code, errcode), (op, body)
    wrong = {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}
    good = json.dumps({**send, "content": {"msgtype": "m.text", "body": "forged"}}).encode()
    for headers in ({}, wrong):
        async with client.http.post(f"{url}/room_write/send", data=good, headers=headers) as resp:
            assert resp.status == 401
    assert await client.bodies("w", token, room_id) == before


async def sends_at_the_owner_and_caches_kept_true(cluster: DeploymentClient) -> None:
    alice = await cluster.register("p1", "alice")
    bob = await cluster.register("p1", "bob")
    room_id = await cluster.room_owned_by("p2", "p1", alice, PERSISTERS)
    taken = (await cluster.cluster.status("p2"))["forwarded_writes_taken"]["send"]

    # A send through p1 runs at p2, the owner.
    first = await cluster.send("p1", alice, room_id, "hello", "txn-1")
    assert (await cluster.cluster.status("p2"))["forwarded_writes_taken"]["send"] == taken + 1
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
