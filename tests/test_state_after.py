"""/sync with `use_state_after` (MSC4222, spec v1.16) over real HTTP: rooms
carry `state_after`, the state at the END of the timeline (the delta since
the last sync), never `state`, so that a client applying only `state_after`
always ends with the room's state as the server has it."""

from __future__ import annotations

from typing import Any

import nio

from tests.test_sync_rooms import create, join, query_log, raw_sync, say  # noqa: F401

V3 = "/_matrix/client/v3"
STABLE = {"use_state_after": True}
UNSTABLE = {"org.matrix.msc4222.use_state_after": True}


async def set_state(hs: Any, client: nio.AsyncClient, room: str, kind: str, content: dict) -> str:
    status, body = await hs.request(
        "PUT", f"{V3}/rooms/{room}/state/{kind}/", token=client.access_token, json=content
    )
    assert status == 200, body
    return body["event_id"]


def state_after(body: dict[str, Any], room: str, section: str = "join") -> dict[tuple, dict]:
    """{(type, state_key): event} of a room's state_after; checks `state` is absent."""
    entry = body["rooms"][section][room]
    assert "state" not in entry
    return {(e["type"], e["state_key"]): e for e in entry["state_after"]["events"]}


async def test_initial_sync_carries_the_state_at_the_end_of_the_timeline(hs, login):
    alice = await login("alice")
    room = await create(alice, name="first")
    await say(alice, room, "hello")
    name_id = await set_state(hs, alice, room, "m.room.name", {"name": "last"})
    body = await raw_sync(hs, alice, **STABLE)
    after = state_after(body, room)
    # The timeline's own state events are in state_after too: the name at the end.
    assert after[("m.room.name", "")]["event_id"] == name_id
    assert ("m.room.create", "") in after and ("m.room.member", alice.user_id) in after
    timeline_ids = [e["event_id"] for e in body["rooms"]["join"][room]["timeline"]["events"]]
    assert name_id in timeline_ids


async def test_incremental_unlimited_and_gappy(hs, login):
    alice = await login("alice")
    room = await create(alice, name="one")
    first = await raw_sync(hs, alice, **STABLE)

    # Unlimited: the new name is in the timeline and in state_after.
    name_id = await set_state(hs, alice, room, "m.room.name", {"name": "two"})
    body = await raw_sync(hs, alice, since=first["next_batch"], **STABLE)
    entry = body["rooms"]["join"][room]
    assert entry["timeline"]["limited"] is False
    assert [e["event_id"] for e in entry["timeline"]["events"]] == [name_id]
    assert set(state_after(body, room)) == {("m.room.name", "")}

    # Gappy: the topic changed before the timeline, the name twice; only the
    # end values come, the timeline shows messages only.
    await set_state(hs, alice, room, "m.room.topic", {"topic": "t1"})
    topic_id = await set_state(hs, alice, room, "m.room.topic", {"topic": "t2"})
    await set_state(hs, alice, room, "m.room.name", {"name": "three"})
    last_name = await set_state(hs, alice, room, "m.room.name", {"name": "four"})
    for n in range(4):
        await say(alice, room, f"m{n}")
    gappy = await raw_sync(
        hs,
        alice,
        since=body["next_batch"],
        filter={"room": {"timeline": {"limit": 2}}},
        **STABLE,
    )
    entry = gappy["rooms"]["join"][room]
    assert entry["timeline"]["limited"] is True
    after = state_after(gappy, room)
    assert {k: e["event_id"] for k, e in after.items()} == {
        ("m.room.topic", ""): topic_id,
        ("m.room.name", ""): last_name,
    }
    assert after[("m.room.name", "")]["content"] == {"name": "four"}

    # Nothing changed since: the room comes with an empty state_after.
    await say(alice, room, "quiet")
    quiet = await raw_sync(hs, alice, since=gappy["next_batch"], **STABLE)
    assert quiet["rooms"]["join"][room]["state_after"] == {"events": []}


async def test_state_changed_inside_a_limited_timeline(hs, login):
    """A state event inside a limited timeline, then more messages: the state
    before the timeline (classic `state`) would hold the old value; state_after
    holds the new one."""
    alice = await login("alice")
    room = await create(alice)
    first = await raw_sync(hs, alice, **STABLE)
    for n in range(3):
        await say(alice, room, f"before {n}")
    topic_id = await set_state(hs, alice, room, "m.room.topic", {"topic": "new"})
    await say(alice, room, "after")
    filt = {"room": {"timeline": {"limit": 2}}}
    body = await raw_sync(hs, alice, since=first["next_batch"], filter=filt, **STABLE)
    timeline = body["rooms"]["join"][room]["timeline"]
    assert timeline["limited"] is True
    assert [e["event_id"] for e in timeline["events"]][0] == topic_id
    assert state_after(body, room)[("m.room.topic", "")]["event_id"] == topic_id
    # The classic form of the same sync puts it in neither `state` (it is
    # in the timeline) nor anywhere else outside the timeline.
    classic = await raw_sync(hs, alice, since=first["next_batch"], filter=filt)
    assert "state_after" not in classic["rooms"]["join"][room]
    assert classic["rooms"]["join"][room]["state"] == {"events": []}


async def test_unstable_parameter_answers_under_the_unstable_key(hs, login):
    alice = await login("alice")
    room = await create(alice)
    body = await raw_sync(hs, alice, **UNSTABLE)
    entry = body["rooms"]["join"][room]
    assert "state" not in entry and "state_after" not in entry
    keys = {(e["type"], e["state_key"]) for e in entry["org.matrix.msc4222.state_after"]["events"]}
    assert ("m.room.create", "") in keys


async def test_bad_flag_is_refused(hs, login):
    alice = await login("alice")
    status, body = await hs.request(
        "GET", f"{V3}/sync?use_state_after=yes", token=alice.access_token
    )
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"


async def test_lazy_loaded_members(hs, login):
    alice, bob, carol = await login("alice"), await login("bob"), await login("carol")
    # Named: no heroes, whose member events lazy loading would add.
    room = await create(alice, preset=nio.RoomPreset.public_chat, name="Lazy")
    await join(bob, room)
    await join(carol, room)
    await say(bob, room, "from bob")
    lazy = {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 1}}}
    body = await raw_sync(hs, alice, filter=lazy, **STABLE)
    members = {k[1] for k in state_after(body, room) if k[0] == "m.room.member"}
    # The timeline's sender and the user; carol sent nothing shown.
    assert members == {alice.user_id, bob.user_id}

    # carol speaks: her member event comes (it did not change, but the client
    # needs it); bob's, already sent to this device, does not.
    await say(carol, room, "from carol")
    await say(bob, room, "bob again")
    lazy["room"]["timeline"]["limit"] = 5
    later = await raw_sync(hs, alice, since=body["next_batch"], filter=lazy, **STABLE)
    members = {k[1] for k in state_after(later, room) if k[0] == "m.room.member"}
    assert members == {carol.user_id}


async def test_left_room_carries_the_state_at_the_leave(hs, login):
    alice, bob = await login("alice"), await login("bob")
    room = await create(alice, preset=nio.RoomPreset.public_chat)
    await join(bob, room)
    first = await raw_sync(hs, bob, **STABLE)
    topic_id = await set_state(hs, alice, room, "m.room.topic", {"topic": "bye"})
    status, _ = await hs.request(
        "POST", f"{V3}/rooms/{room}/leave", token=bob.access_token, json={}
    )
    assert status == 200
    # After the leave: not shown to bob.
    await set_state(hs, alice, room, "m.room.topic", {"topic": "later"})
    body = await raw_sync(hs, bob, since=first["next_batch"], **STABLE)
    after = state_after(body, room, "leave")
    assert after[("m.room.topic", "")]["event_id"] == topic_id
    assert after[("m.room.member", bob.user_id)]["content"]["membership"] == "leave"


async def test_queries_stay_bounded(hs, login, query_log):  # noqa: F811
    alice, bob = await login("alice"), await login("bob")

    async def rooms_and_syncs(count: int) -> tuple[int, int]:
        rooms = [await create(alice, preset=nio.RoomPreset.public_chat) for _ in range(count)]
        for room in rooms:
            await join(bob, room)
        query_log.clear()
        filt = {"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}}
        body = await raw_sync(hs, bob, filter=filt, **STABLE)
        for room in rooms:
            await set_state(hs, alice, room, "m.room.topic", {"topic": "x"})
            for n in range(3):
                await say(alice, room, f"m{n}")
        await raw_sync(hs, bob, since=body["next_batch"], filter=filt, **STABLE)
        return len(query_log[0]), len(query_log[1])

    few = await rooms_and_syncs(2)
    many = await rooms_and_syncs(6)
    # The incremental sync is the same; the initial one may differ by the
    # history visibility checks (a bounded few).
    assert many[1] == few[1]
    assert max(*many, *few) < 20


async def test_versions_advertise_msc4222(hs):
    status, body = await hs.request("GET", "/_matrix/client/versions")
    assert status == 200
    assert body["unstable_features"].get("org.matrix.msc4222") is True
