"""Presence between users who share a room, through matrix-nio, and its
timers (driven by a clock the test moves, not by waiting)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nio

from homeserver.ephemeral.common import StreamPublisher
from homeserver.ephemeral.presence import PresenceService, PresenceTimers
from homeserver.notifier import Notifier
from homeserver.requester import Requester
from storage.presence import PresenceStore
from storage.streams import StreamIds

V3 = "/_matrix/client/v3"


async def room_of_two(users: Callable[[str], Any]) -> tuple[Any, Any, str]:
    alice = await users("alice")
    bob = await users("bob")
    created = await alice.room_create(invite=[bob.user_id])
    assert isinstance(created, nio.RoomCreateResponse), created
    assert isinstance(await bob.join(created.room_id), nio.JoinResponse)
    return alice, bob, created.room_id


async def presence_until(
    client: Any, since: str | None, wanted: Callable[[list[Any]], bool], **kwargs: Any
) -> tuple[list[Any], str]:
    """Long-poll /sync until its presence events satisfy `wanted`."""
    for _ in range(20):
        resp = await client.sync(timeout=10_000, since=since, **kwargs)
        assert isinstance(resp, nio.SyncResponse), resp
        since = resp.next_batch
        if wanted(resp.presence_events):
            return resp.presence_events, since
    raise AssertionError("the expected presence never came")


def states(events: list[Any]) -> dict[str, tuple[str, str | None]]:
    return {e.user_id: (e.presence, e.status_msg) for e in events}


async def test_presence_between_users_who_share_a_room(users):
    alice, bob, _ = await room_of_two(users)
    carol = await users("carol")
    since = (await bob.sync(timeout=0, set_presence="offline")).next_batch
    carol_since = (await carol.sync(timeout=0)).next_batch

    resp = await alice.set_presence("online", "writing tests")
    assert isinstance(resp, nio.PresenceSetResponse), resp
    events, _ = await presence_until(
        bob, since, lambda e: alice.user_id in states(e), set_presence="offline"
    )
    assert states(events)[alice.user_id] == ("online", "writing tests")
    got = await bob.get_presence(alice.user_id)
    assert isinstance(got, nio.PresenceGetResponse), got
    assert (got.presence, got.status_msg, got.currently_active) == (
        "online",
        "writing tests",
        True,
    )
    assert isinstance(got.last_active_ago, int) and got.last_active_ago >= 0

    # An initial sync: the people bob shares a room with who are not offline.
    initial = await bob.sync(timeout=0, since=None, full_state=True, set_presence="offline")
    assert states(initial.presence_events) == {alice.user_id: ("online", "writing tests")}

    # Carol shares no room with alice: no GET, nothing in her sync.
    refused = await carol.get_presence(alice.user_id)
    assert isinstance(refused, nio.PresenceGetError) and refused.status_code == "M_FORBIDDEN"
    carol_sync = await carol.sync(timeout=0, since=carol_since)
    assert alice.user_id not in states(carol_sync.presence_events)
    carol_initial = await carol.sync(timeout=0, since=None, full_state=True)
    assert set(states(carol_initial.presence_events)) == {carol.user_id}


async def test_sync_set_presence(users):
    alice, bob, _ = await room_of_two(users)
    since = (await alice.sync(timeout=0, set_presence="offline")).next_batch
    await bob.sync(timeout=0, set_presence="unavailable")
    events, since = await presence_until(
        alice, since, lambda e: bob.user_id in states(e), set_presence="offline"
    )
    assert states(events)[bob.user_id] == ("unavailable", None)

    # A sync with set_presence=offline leaves presence alone; the default is online.
    await bob.sync(timeout=0, set_presence="offline")
    assert (await alice.get_presence(bob.user_id)).presence == "unavailable"
    await bob.sync(timeout=0)
    events, _ = await presence_until(
        alice,
        since,
        lambda e: states(e).get(bob.user_id, ("",))[0] == "online",
        set_presence="offline",
    )
    got = await alice.get_presence(bob.user_id)
    assert (got.presence, got.currently_active) == ("online", True)


async def test_status_msg_round_trip(users):
    alice = await users("alice")
    assert (await alice.get_presence(alice.user_id)).presence == "offline"
    await alice.set_presence("unavailable", "out for lunch")
    got = await alice.get_presence(alice.user_id)
    assert (got.presence, got.status_msg, got.currently_active) == (
        "unavailable",
        "out for lunch",
        None,
    )
    # Setting presence without a message clears it.
    await alice.set_presence("online")
    got = await alice.get_presence(alice.user_id)
    assert (got.presence, got.status_msg) == ("online", None)


async def test_presence_bad_input(hs, users):
    alice, bob, _ = await room_of_two(users)
    path = f"{V3}/presence/{alice.user_id}/status"
    await alice.set_presence("online", "here")
    cases = [
        (bob, path, {"presence": "online"}, 403, "M_FORBIDDEN"),
        (alice, path, {"presence": "busy"}, 400, "M_INVALID_PARAM"),
        (alice, path, {"presence": "online", "status_msg": 5}, 400, "M_BAD_JSON"),
        (alice, path, {"status_msg": "hi"}, 400, "M_MISSING_PARAM"),
    ]
    for client, url, body, status, errcode in cases:
        got, answer = await hs.request("PUT", url, token=client.access_token, json=body)
        assert (got, answer["errcode"]) == (status, errcode), body
    status, body = await hs.request(
        "GET", f"{V3}/presence/not-a-user/status", token=alice.access_token
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    got = await alice.get_presence(alice.user_id)
    assert (got.presence, got.status_msg) == ("online", "here")


async def test_presence_timers(hs, users):
    """Online -> not currently active -> unavailable while a sync is in
    flight; offline once syncs stop; each change stored for the stream."""
    alice = await users("alice")
    me = Requester(alice.user_id, alice.device_id, 0)
    clock = [1_000_000]
    timers = PresenceTimers(idle_ms=300_000, sync_timeout_ms=30_000, active_ms=60_000)
    notifier = Notifier()
    presence = PresenceService(
        PresenceStore(hs.pool),
        StreamPublisher("presence", StreamIds(hs.pool, "presence_stream"), notifier),
        timers=timers,
        clock=lambda: clock[0],
    )
    await presence.start()
    try:
        async with presence.syncing(alice.user_id, "online"):
            assert await presence.get_status(me, alice.user_id) == {
                "presence": "online",
                "last_active_ago": 0,
                "currently_active": True,
            }
            start = notifier.positions["presence"]
            clock[0] += 61_000
            await presence.check_timeouts()
            assert (await presence.get_status(me, alice.user_id))["currently_active"] is False
            clock[0] += 240_000
            await presence.check_timeouts()
            status = await presence.get_status(me, alice.user_id)
            assert (status["presence"], status["last_active_ago"]) == ("unavailable", 301_000)
            # Activity brings an idle user back.
            await presence.bump_active(alice.user_id)
            assert (await presence.get_status(me, alice.user_id))["presence"] == "online"
        clock[0] += 29_000
        await presence.check_timeouts()
        assert (await presence.get_status(me, alice.user_id))["presence"] == "online"
        clock[0] += 2_000
        await presence.check_timeouts()
        assert await presence.get_status(me, alice.user_id) == {
            "presence": "offline",
            "last_active_ago": 31_000,
        }
        stored = await PresenceStore(hs.pool).get([alice.user_id])
        assert stored[alice.user_id].state == "offline"
        # online, not active, unavailable, online again, offline.
        assert notifier.positions["presence"] - start == 4
    finally:
        await presence.stop()


async def test_incremental_sync_carries_presence_of_new_room_members(users):
    """As in Synapse: joining a room brings its members' presence, and a new
    member's presence reaches those already in the room, changed or not."""
    alice, bob, carol = await users("alice"), await users("bob"), await users("carol")
    await alice.set_presence("online", "here")
    await carol.set_presence("unavailable", "away")
    created = await alice.room_create(preset=nio.RoomPreset.public_chat)
    assert isinstance(created, nio.RoomCreateResponse), created
    room = created.room_id
    bob_since = (await bob.sync(timeout=0, set_presence="offline")).next_batch
    alice_since = (await alice.sync(timeout=0, set_presence="offline")).next_batch

    assert isinstance(await bob.join(room), nio.JoinResponse)
    joined = await bob.sync(timeout=0, since=bob_since, set_presence="offline")
    assert states(joined.presence_events) == {alice.user_id: ("online", "here")}
    # Only once: the next sync has nothing new.
    again = await bob.sync(timeout=0, since=joined.next_batch, set_presence="offline")
    assert again.presence_events == []

    assert isinstance(await carol.join(room), nio.JoinResponse)
    seen = await alice.sync(timeout=0, since=alice_since, set_presence="offline")
    assert states(seen.presence_events)[carol.user_id] == ("unavailable", "away")

    # Someone who never set a presence arrives offline.
    dave = await users("dave")
    assert isinstance(await dave.join(room), nio.JoinResponse)
    arrived = await alice.sync(timeout=0, since=seen.next_batch, set_presence="offline")
    assert states(arrived.presence_events) == {dave.user_id: ("offline", None)}
