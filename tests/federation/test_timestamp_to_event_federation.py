"""Jump to date across servers: in a room joined late, the history before our
join is on the resident server, which is asked for the event closest to a
time (`/timestamp_to_event`); the event it names is fetched and stored, and
the client reads it through /context. Other servers ask us the same."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from homeserver.events.builder import build_event
from tests.federation.conftest import ScriptedRemote
from tests.federation.hosted_room import V1, HostedRoom
from tests.federation.test_backfill import joined, serve_backfill

CV1 = "/_matrix/client/v1"
CV3 = "/_matrix/client/v3"


def message_at(room: HostedRoom, body: str, ts: int) -> str:
    """A message of the remote's at a chosen time; its id."""
    event = build_event(
        room.version,
        room_id=room.room_id,
        type="m.room.message",
        sender=room.alice,
        content={"msgtype": "m.text", "body": body},
        state_key=None,
        prev_events=[room.events[-1]],
        state=lambda t, k: room.state.get((t, k)),
        origin_server_ts=ts,
        server_name=room.remote.server_name,
        signing_key=room.remote.signing_key,
    )
    return room.add(event).event_id


def serve_timestamps(room: HostedRoom) -> list[dict[str, str]]:
    """The remote's /timestamp_to_event over its room; returns the queries it got."""
    asked: list[dict[str, str]] = []

    async def lookup(request: web.Request, _origin: str, _body: Any) -> Any:
        asked.append(dict(request.query))
        ts, forwards = int(request.query["ts"]), request.query["dir"] == "f"
        events = [e for e in room.events if e.type == "m.room.message"]
        if forwards:
            found = min(
                (e for e in events if e.origin_server_ts >= ts), key=lambda e: e.origin_server_ts
            )
        else:
            found = max(
                (e for e in events if e.origin_server_ts <= ts), key=lambda e: e.origin_server_ts
            )
        return {"event_id": found.event_id, "origin_server_ts": found.origin_server_ts}

    room.remote.app.router.add_get(V1 + "/timestamp_to_event/{roomId}", room.remote.handler(lookup))
    return asked


async def test_gap_before_our_join_is_filled_from_the_resident_server(
    fed_hs: Any, remote_factory: Any
) -> None:
    remote: ScriptedRemote = await remote_factory(start=False)
    room = HostedRoom(remote)
    message_at(room, "one", 1_000)
    two = message_at(room, "two", 2_000)
    message_at(room, "three", 3_000)
    room.serve()
    serve_backfill(room)
    asked = serve_timestamps(room)
    token, _ = await joined(fed_hs, remote, room)
    url = f"{CV1}/rooms/{quote(room.room_id)}/timestamp_to_event"

    # Forwards from 1.5 s: the closest event we have is our join, next to the
    # gap before it: the resident server is asked, its event fetched.
    status, body = await fed_hs.request("GET", f"{url}?ts=1500&dir=f", token=token)
    assert status == 200, body
    assert body == {"event_id": two, "origin_server_ts": 2_000}
    assert asked == [{"ts": "1500", "dir": "f"}]
    status, context = await fed_hs.request(
        "GET", f"{CV3}/rooms/{quote(room.room_id)}/context/{quote(two)}?limit=0", token=token
    )
    assert status == 200, context
    assert context["event"]["content"]["body"] == "two"

    # The newest event is our own and the end of the room: no need to ask.
    status, body = await fed_hs.request("GET", f"{url}?ts=99999999999999&dir=b", token=token)
    assert status == 200, body
    assert body["event_id"] != two and len(asked) == 1

    # Another server asks us: we answer from what we have.
    status, body = await remote.request(
        fed_hs, "GET", f"{V1}/timestamp_to_event/{quote(room.room_id)}?ts=2000&dir=b"
    )
    assert status == 200, body
    assert body == {"event_id": two, "origin_server_ts": 2_000}
    status, body = await remote.request(
        fed_hs, "GET", f"{V1}/timestamp_to_event/{quote(room.room_id)}?ts=2000&dir=sideways"
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_servers_outside_the_room_are_refused(fed_hs: Any, remote: ScriptedRemote) -> None:
    token = (await fed_hs.register("alice"))["access_token"]
    status, created = await fed_hs.request(
        "POST", f"{CV3}/createRoom", token=token, json={"preset": "private_chat"}
    )
    assert status == 200, created
    status, body = await remote.request(
        fed_hs, "GET", f"{V1}/timestamp_to_event/{quote(created['room_id'])}?ts=0&dir=f"
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
