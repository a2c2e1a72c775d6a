"""Work a request does for a client stops when that client goes, except writes,
which finish; and remote work for createRoom never keeps its client waiting."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from homeserver.events.event import parse_event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.events.signing import sign_event
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"
CLIENT = "/_matrix/client/v3"
# How long a test waits for something that should happen at once, before it fails.
PATIENCE_S = 30
POLL_S = 0.05


async def raw_request(
    hs: RunningServer, method: str, path: str, token: str, body: Any = None
) -> asyncio.StreamWriter:
    """Send a request over a socket of our own, to hang up on it at will."""
    _, writer = await asyncio.open_connection("127.0.0.1", hs.server.client_port)
    data = b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(data)}\r\n"
        "Content-Type: application/json\r\n\r\n"
    )
    writer.write(head.encode() + data)
    await writer.drain()
    return writer


async def eventually(check: Any) -> None:
    for _ in range(int(PATIENCE_S / POLL_S)):
        if await check():
            return
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"{check.__name__} still false after {PATIENCE_S} s")


async def test_a_read_whose_client_hangs_up_stops_its_remote_call(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote: ScriptedRemote = await remote_factory(start=False)
    asked = asyncio.Event()
    abandoned = asyncio.Event()
    calls: list[str] = []

    async def profile(request: web.Request) -> web.Response:
        # Never answers while our server waits: only our server hanging up ends it.
        calls.append(request.query["user_id"])
        asked.set()
        for _ in range(int(PATIENCE_S / POLL_S)):
            if request.transport is None or request.transport.is_closing():
                abandoned.set()
                break
            await asyncio.sleep(POLL_S)
        return web.json_response({})

    remote.app.router.add_get(f"{V1}/query/profile", profile)
    await remote.start()
    token = (await fed_hs.register("alice"))["access_token"]
    writer = await raw_request(
        fed_hs, "GET", f"{CLIENT}/profile/@carol:{remote.server_name}", token
    )
    async with asyncio.timeout(PATIENCE_S):
        await asyncio.wait_for(asked.wait(), PATIENCE_S)
    writer.close()
    # Our server gives up its call to the remote as soon as its client is gone.
    await asyncio.wait_for(abandoned.wait(), PATIENCE_S)
    assert len(calls) == 1
    # And it still serves: the next lookup is asked afresh.
    status, _ = await fed_hs.request("GET", f"{CLIENT}/profile/@alice:localhost", token=token)
    assert status == 200


async def test_a_write_whose_client_hangs_up_is_finished_whole(
    fed_hs: RunningServer, caplog: Any
) -> None:
    token = (await fed_hs.register("alice"))["access_token"]
    invitees = [f"@guest{i}:localhost" for i in range(100)]
    caplog.set_level(logging.INFO, logger="homeserver.api.completion")
    writer = await raw_request(
        fed_hs, "POST", f"{CLIENT}/createRoom", token, {"invite": invitees, "name": "Big"}
    )

    async def room_started() -> bool:
        return await fed_hs.pool.fetchval("SELECT count(*) FROM rooms") > 0

    await eventually(room_started)
    writer.close()
    room_id = await fed_hs.pool.fetchval("SELECT room_id FROM rooms")

    async def all_invited() -> bool:
        count = await fed_hs.pool.fetchval(
            """SELECT count(*) FROM current_state WHERE room_id = $1
               AND type = 'm.room.member' AND membership = 'invite'""",
            room_id,
        )
        return count == len(invitees)

    await eventually(all_invited)
    assert "client left during a write" in caplog.text
    # The room is whole for its creator: every event reached the stream, as /sync shows.
    synced: list[dict[str, Any]] = []

    async def in_sync() -> bool:
        status, body = await fed_hs.request("GET", f"{CLIENT}/sync", token=token)
        assert status == 200, body
        room = body["rooms"]["join"][room_id]
        synced[:] = [*room.get("state", {}).get("events", []), *room["timeline"]["events"]]
        return any(e.get("state_key") == invitees[-1] for e in synced)

    await eventually(in_sync)
    assert any(e["type"] == "m.room.name" for e in synced)


async def test_create_room_invites_remote_users_through_their_servers_without_waiting_for_dead_ones(
    fed_hs: RunningServer, remote_factory: Any, caplog: Any
) -> None:
    remote: ScriptedRemote = await remote_factory(start=False)
    asked: list[str] = []

    async def invite(request: web.Request, _origin: str, body: Any) -> Any:
        version = KNOWN_ROOM_VERSIONS[body["room_version"]]
        event = parse_event(body["event"], version, event_id=request.match_info["eventId"])
        assert event.state_key is not None
        asked.append(event.state_key)
        return {"event": sign_event(body["event"], remote.server_name, remote.signing_key, version)}

    remote.app.router.add_put(f"{V2}/invite/{{roomId}}/{{eventId}}", remote.handler(invite))
    await remote.start()
    await remote.expect_keys_of(fed_hs)
    caplog.set_level(logging.INFO, logger="homeserver.rooms.remote_invites")
    token = (await fed_hs.register("alice"))["access_token"]
    reachable = [f"@dora:{remote.server_name}", f"@erin:{remote.server_name}"]
    unreachable = ["@a:127.0.0.1:1", "@b:127.0.0.1:1", "@c:unreachable.invalid"]
    status, body = await fed_hs.request(
        "POST",
        f"{CLIENT}/createRoom",
        token=token,
        json={"invite": [*unreachable, *reachable, "@bob:localhost"], "is_direct": True},
    )
    assert status == 200, body
    room_id = body["room_id"]

    async def invited() -> set[str]:
        status, members = await fed_hs.request(
            "GET", f"{CLIENT}/rooms/{room_id}/members?membership=invite", token=token
        )
        assert status == 200, members
        return {e["state_key"] for e in members["chunk"] if e["content"].get("is_direct")}

    async def reachable_invited() -> bool:
        return set(reachable) <= await invited()

    # The reachable server signed its users' invites, one after the other;
    # the dead servers held up nobody, and their invites wait for a retry.
    await eventually(reachable_invited)
    assert asked == reachable
    assert await invited() == {*reachable, "@bob:localhost"}
    assert (
        "invites to 127.0.0.1:1" in caplog.text and "invites to unreachable.invalid" in caplog.text
    )
