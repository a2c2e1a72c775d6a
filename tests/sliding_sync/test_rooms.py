"""Room data: subscriptions, required_state patterns, invites, leaving,
timelines that /messages continues, heroes and counts."""

from __future__ import annotations

from typing import Any

from tests.conftest import RunningServer
from tests.sliding_sync.helpers import all_rooms, bodies, new_user


def state_keys(entry: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in entry.get("required_state", [])}


async def test_a_room_subscription_with_its_own_config(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    quiet = await alice.create_room(name="quiet")
    for i in range(3):
        await alice.send(quiet, f"m{i}")
    for _ in range(2):
        await alice.create_room()
    body = {
        **all_rooms(end=0),
        "room_subscriptions": {
            quiet: {"timeline_limit": 2, "required_state": [["m.room.topic", "*"], ["*", ""]]}
        },
    }
    response = await alice.sync_ok(body)
    assert response["lists"]["all"]["count"] == 3
    entry = response["rooms"][quiet]
    assert bodies(entry["timeline"]) == ["m1", "m2"]
    assert entry["limited"] is True
    # ["*", ""]: every state event with an empty state key.
    assert ("m.room.power_levels", "") in state_keys(entry)
    assert ("m.room.join_rules", "") in state_keys(entry)
    assert all(key == "" for _, key in state_keys(entry))
    assert len(response["rooms"]) == 2


async def test_configs_of_a_room_in_a_list_and_a_subscription_merge(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room(name="both")
    for i in range(3):
        await alice.send(room, f"m{i}")
    body = {
        **all_rooms(),
        "room_subscriptions": {
            room: {"timeline_limit": 3, "required_state": [["m.room.power_levels", ""]]}
        },
    }
    entry = (await alice.sync_ok(body))["rooms"][room]
    assert bodies(entry["timeline"]) == ["m0", "m1", "m2"]
    assert state_keys(entry) == {
        ("m.room.create", ""),
        ("m.room.name", ""),
        ("m.room.power_levels", ""),
    }


async def test_subscriptions_to_rooms_the_user_cannot_see_are_ignored(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    secret = await bob.create_room()
    body = {
        "room_subscriptions": {
            secret: {"timeline_limit": 5},
            "!nowhere:localhost": {"timeline_limit": 5},
        }
    }
    response = await alice.sync_ok(body)
    assert response["rooms"] == {}


async def test_lazy_members_and_me(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    carol = await new_user(hs, "carol")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await carol.join(room)
    await bob.send(room, "from bob")
    body = {
        "room_subscriptions": {
            room: {
                "timeline_limit": 1,
                "required_state": [["m.room.member", "$LAZY"], ["m.room.member", "$ME"]],
            }
        }
    }
    entry = (await alice.sync_ok(body))["rooms"][room]
    assert state_keys(entry) == {("m.room.member", bob.user_id), ("m.room.member", alice.user_id)}
    assert entry["joined_count"] == 3


async def test_state_changes_come_once(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room(name="before")
    first = await alice.sync_ok(all_rooms())
    await alice.state(room, "m.room.name", {"name": "after"})
    await alice.state(room, "m.room.topic", {"topic": "not asked for"})
    second = await alice.sync_ok(all_rooms(), pos=first["pos"])
    entry = second["rooms"][room]
    assert entry["name"] == "after"
    assert state_keys(entry) == {("m.room.name", "")}
    assert [e["content"] for e in entry["required_state"]] == [{"name": "after"}]


async def test_invites_carry_invite_state(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room(name="party")
    await alice.invite(room, bob.user_id)
    body = all_rooms(filters={"is_invite": True})
    response = await bob.sync_ok(body)
    assert response["lists"]["all"]["count"] == 1
    entry = response["rooms"][room]
    assert entry["initial"] is True
    assert "timeline" not in entry
    events = entry["invite_state"]
    assert {"type": "m.room.name", "state_key": "", "content": {"name": "party"}}.items() <= (
        next(e for e in events if e["type"] == "m.room.name").items()
    )
    assert events[-1]["type"] == "m.room.member"
    assert events[-1]["content"]["membership"] == "invite"
    assert events[-1]["sender"] == alice.user_id

    # Joining turns the room into a joined one, sent afresh.
    await bob.join(room)
    after = await bob.sync_ok(all_rooms(), pos=response["pos"])
    joined = after["rooms"][room]
    assert joined["initial"] is True
    assert "invite_state" not in joined
    assert joined["joined_count"] == 2


async def test_leaving_removes_the_room_and_says_so(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    first = await bob.sync_ok(all_rooms())
    assert first["lists"]["all"]["count"] == 1
    await bob.leave(room)
    second = await bob.sync_ok(all_rooms(), pos=first["pos"])
    # The response that tells of the leave still lists the room, once.
    assert second["lists"]["all"]["count"] == 1
    entry = second["rooms"][room]
    assert entry["timeline"][-1]["content"]["membership"] == "leave"
    assert entry["timeline"][-1]["state_key"] == bob.user_id
    # Afterwards the room is gone from the list, and stays gone.
    await alice.send(room, "bob is not here")
    third = await bob.sync_ok(all_rooms(), pos=second["pos"])
    assert third["rooms"] == {}
    assert third["lists"]["all"]["count"] == 0


async def test_kicked_and_banned_rooms_stay_in_the_list(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    first = await bob.sync_ok(all_rooms())
    await alice.call(
        "POST", f"/_matrix/client/v3/rooms/{room}/ban", {"user_id": bob.user_id, "reason": "x"}
    )
    second = await bob.sync_ok(all_rooms(), pos=first["pos"])
    assert second["lists"]["all"]["count"] == 1
    entry = second["rooms"][room]
    assert entry["timeline"][-1]["content"]["membership"] == "ban"
    await alice.send(room, "not for bob")
    third = await bob.sync_ok(all_rooms(), pos=second["pos"])
    assert third["rooms"] == {}
    assert third["lists"]["all"]["count"] == 1
    # Forgetting it takes it out of the list.
    await bob.call("POST", f"/_matrix/client/v3/rooms/{room}/forget", {})
    fourth = await bob.sync_ok(all_rooms(), pos=third["pos"])
    assert fourth["lists"]["all"]["count"] == 0


async def test_prev_batch_continues_with_messages(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    for i in range(5):
        await alice.send(room, f"m{i}")
    entry = (await alice.sync_ok(all_rooms(limit=2)))["rooms"][room]
    assert bodies(entry["timeline"]) == ["m3", "m4"]
    assert entry["limited"] is True
    older = await alice.call(
        "GET", f"/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=3&from={entry['prev_batch']}"
    )
    assert bodies(older["chunk"]) == ["m2", "m1", "m0"]


async def test_heroes_name_an_unnamed_room(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await bob.call(
        "PUT", f"/_matrix/client/v3/profile/{bob.user_id}/displayname", {"displayname": "Bob B"}
    )
    entry = (await alice.sync_ok(all_rooms()))["rooms"][room]
    assert "name" not in entry
    assert entry["heroes"] == [{"user_id": bob.user_id, "displayname": "Bob B"}]
    assert entry["invited_count"] == 0
    assert entry["notification_count"] == 0


async def test_notification_counts(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await alice.send(room, "one")
    await alice.send(room, "two")
    entry = (await bob.sync_ok(all_rooms()))["rooms"][room]
    assert entry["notification_count"] == 2
    assert entry["highlight_count"] == 0


async def test_lazy_members_are_sent_once_per_connection(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await bob.send(room, "one")
    body = {
        "room_subscriptions": {
            room: {"timeline_limit": 1, "required_state": [["m.room.member", "$LAZY"]]}
        }
    }
    first = await alice.sync_ok(body)
    assert state_keys(first["rooms"][room]) == {("m.room.member", bob.user_id)}
    await bob.send(room, "two")
    second = await alice.sync_ok(body, pos=first["pos"])
    assert bodies(second["rooms"][room]["timeline"]) == ["two"]
    assert state_keys(second["rooms"][room]) == set()
    # A new connection starts over.
    fresh = await alice.sync_ok(body)
    assert state_keys(fresh["rooms"][room]) == {("m.room.member", bob.user_id)}


async def test_knocks_carry_knock_state(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room(name="door")
    await alice.state(room, "m.room.join_rules", {"join_rule": "knock"})
    await bob.call("POST", f"/_matrix/client/v3/knock/{room}", {"reason": "hi"})
    entry = (await bob.sync_ok(all_rooms()))["rooms"][room]
    assert entry["initial"] is True
    assert entry["knock_state"][-1]["content"]["membership"] == "knock"
    assert ("m.room.name", "") in {(e["type"], e["state_key"]) for e in entry["knock_state"]}
