"""A bridge built on mautrix-python's `mautrix.appservice` against our server.

It pings the server, registers ghosts with `m.login.application_service`,
gets ghosts created through the user query and rooms through the alias query,
and sends messages and state as its ghosts with `?user_id=` and `?ts=`; a
matrix-nio client sees what the ghosts did, at the bridged times.
"""

from __future__ import annotations

import asyncio
from typing import Any

import nio
import pytest
from mautrix.types import (
    EventType,
    Membership,
    MemberStateEventContent,
    MessageType,
    TextMessageEventContent,
)

from tests.appservice.conftest import Bridge

V3 = "/_matrix/client/v3"
# mautrix passes aiohttp the event loop, which aiohttp deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:loop argument is deprecated")
# Times on the other network, long before now: nobody mistakes them for ours.
BRIDGED_TS = 1_600_000_000_000
BRIDGED_STATE_TS = 1_600_000_123_456


async def sync_until(client: nio.AsyncClient, found: Any, attempts: int = 50) -> Any:
    """Sync until `found(response)` returns something."""
    for _ in range(attempts):
        response = await client.sync(timeout=200)
        assert isinstance(response, nio.SyncResponse), response
        result = found(response)
        if result:
            return result
    raise AssertionError("not seen in sync")


async def test_the_bridge_pings_the_server(bridge: Bridge) -> None:
    duration = await bridge.appservice.ping_self("ping-txn-1")
    assert isinstance(duration, int) and duration >= 0


async def test_the_bot_exists_and_ghosts_register(bridge: Bridge) -> None:
    bot = bridge.appservice.intent
    assert (await bot.whoami()).user_id == "@bridgebot:localhost"
    ghost = bot.user("@bridge_alice:localhost")
    await ghost.ensure_registered()
    assert (await ghost.whoami()).user_id == "@bridge_alice:localhost"
    # Registering again: M_USER_IN_USE, which mautrix takes as "already there".
    status, body = await bridge.hs.request(
        "POST",
        f"{V3}/register",
        token="as-token-bridge",
        json={"type": "m.login.application_service", "username": "bridge_alice"},
    )
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")


async def test_ghosts_are_created_through_the_user_query(bridge: Bridge, people: Any) -> None:
    client = await people("carol")
    profile = await client.get_profile("@bridge_ghost_bob:localhost")
    assert isinstance(profile, nio.ProfileGetResponse), profile
    assert profile.displayname == "Ghost from the other side"
    assert bridge.user_queries == ["@bridge_ghost_bob:localhost"]
    # Now it exists: no second query.
    await client.get_profile("@bridge_ghost_bob:localhost")
    assert len(bridge.user_queries) == 1
    # One the bridge does not know stays unknown.
    missing = await client.get_profile("@bridge_nobody:localhost")
    assert isinstance(missing, nio.ProfileGetError) and missing.status_code == "M_NOT_FOUND"
    # Users outside every namespace are never asked about.
    await client.get_profile("@stranger:localhost")
    assert bridge.user_queries[-1] == "@bridge_nobody:localhost"


async def test_a_room_created_through_the_alias_query_is_joined(
    bridge: Bridge, people: Any
) -> None:
    client = await people("dave")
    joined = await client.join("#bridge_chan_general:localhost")
    assert isinstance(joined, nio.JoinResponse), joined
    assert bridge.alias_queries == ["#bridge_chan_general:localhost"]
    status, body = await bridge.hs.request(
        "GET", f"{V3}/directory/room/%23bridge_chan_general:localhost"
    )
    assert status == 200 and body["room_id"] == joined.room_id
    # An alias the bridge does not know: 404 after asking it.
    status, body = await bridge.hs.request(
        "GET", f"{V3}/directory/room/%23bridge_unknown:localhost"
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert bridge.alias_queries[-1] == "#bridge_unknown:localhost"


async def test_ghosts_send_and_set_state_at_bridged_times(bridge: Bridge, people: Any) -> None:
    client = await people("erin")
    joined = await client.join("#bridge_chan_random:localhost")
    assert isinstance(joined, nio.JoinResponse), joined
    room_id = joined.room_id
    ghost = bridge.appservice.intent.user("@bridge_frank:localhost")
    await ghost.ensure_registered()
    await ghost.ensure_joined(room_id)
    event_id = await ghost.send_message_event(
        room_id,
        EventType.ROOM_MESSAGE,
        TextMessageEventContent(msgtype=MessageType.TEXT, body="hello from IRC"),
        timestamp=BRIDGED_TS,
    )
    state_id = await ghost.send_state_event(
        room_id,
        EventType.ROOM_MEMBER,
        MemberStateEventContent(membership=Membership.JOIN, displayname="Frank (IRC)"),
        state_key="@bridge_frank:localhost",
        timestamp=BRIDGED_STATE_TS,
    )

    def seen(response: nio.SyncResponse) -> dict[str, Any] | None:
        room = response.rooms.join.get(room_id)
        events = {e.event_id: e for e in room.timeline.events} if room else {}
        return events if event_id in events and state_id in events else None

    events = await sync_until(client, seen)
    message = events[event_id]
    assert isinstance(message, nio.RoomMessageText) and message.body == "hello from IRC"
    assert message.sender == "@bridge_frank:localhost"
    assert message.server_timestamp == BRIDGED_TS
    member = events[state_id]
    assert member.server_timestamp == BRIDGED_STATE_TS
    assert member.sender == "@bridge_frank:localhost"


async def test_a_client_ts_is_ignored(bridge: Bridge, people: Any) -> None:
    """Only appservices bridge times; a client's ?ts= changes nothing."""
    client = await people("gina")
    room = await client.room_create()
    status, body = await bridge.hs.request(
        "PUT",
        f"{V3}/rooms/{room.room_id}/send/m.room.message/t1?ts={BRIDGED_TS}",
        token=client.access_token,
        json={"msgtype": "m.text", "body": "now"},
    )
    assert status == 200
    status, event = await bridge.hs.request(
        "GET", f"{V3}/rooms/{room.room_id}/event/{body['event_id']}", token=client.access_token
    )
    assert status == 200 and event["origin_server_ts"] > BRIDGED_TS * 1.01


async def test_concurrent_ghosts(bridge: Bridge) -> None:
    """Many ghosts at once, as a bridge catching up does."""
    intents = [bridge.appservice.intent.user(f"@bridge_n{i}:localhost") for i in range(8)]
    await asyncio.gather(*(i.ensure_registered() for i in intents))
    names = [(await i.whoami()).user_id for i in intents]
    assert names == [f"@bridge_n{i}:localhost" for i in range(8)]


async def test_inviting_an_unknown_ghost_asks_the_bridge_first(bridge: Bridge, people: Any) -> None:
    """The invite names the ghost the bridge created on being asked."""
    client = await people("hank")
    room = await client.room_create()
    invited = await client.room_invite(room.room_id, "@bridge_ghost_ivy:localhost")
    assert isinstance(invited, nio.RoomInviteResponse), invited
    assert bridge.user_queries == ["@bridge_ghost_ivy:localhost"]
    status, member = await bridge.hs.request(
        "GET",
        f"{V3}/rooms/{room.room_id}/state/m.room.member/%40bridge_ghost_ivy:localhost",
        token=client.access_token,
    )
    assert status == 200
    assert member == {"membership": "invite", "displayname": "Ghost from the other side"}
