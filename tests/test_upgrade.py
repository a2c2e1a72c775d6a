"""Room upgrades (POST /rooms/{roomId}/upgrade), checked through what clients read back."""

from __future__ import annotations

import json
from typing import Any

import nio

V3 = "/_matrix/client/v3"


async def create(client: nio.AsyncClient, **kwargs: Any) -> str:
    resp = await client.room_create(**kwargs)
    assert isinstance(resp, nio.RoomCreateResponse), resp
    return resp.room_id


async def state_of(client: nio.AsyncClient, room_id: str) -> dict[tuple[str, str], dict]:
    resp = await client.room_get_state(room_id)
    assert isinstance(resp, nio.RoomGetStateResponse), resp
    return {(e["type"], e["state_key"]): e for e in resp.events}


async def upgrade(hs: Any, client: nio.AsyncClient, room_id: str, body: Any) -> tuple[int, Any]:
    return await hs.request(
        "POST", f"{V3}/rooms/{room_id}/upgrade", token=client.access_token, json=body
    )


async def room_count(hs: Any) -> int:
    return await hs.pool.fetchval("SELECT count(*) FROM rooms")


async def test_upgrade_to_room_12(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    carol = await login("carol")
    old = await create(
        alice,
        room_version="10",
        alias="town",
        name="Town square",
        topic="Everything local",
        visibility=nio.RoomVisibility.public,
        power_level_override={"users": {"@alice:localhost": 100, "@bob:localhost": 50}},
    )
    for client in (bob, carol):
        assert isinstance(await client.join(old), nio.JoinResponse)
    assert isinstance(await alice.room_ban(old, "@mallory:localhost"), nio.RoomBanResponse)

    # Refused: Bob (50) may not send m.room.tombstone (100); unknown versions; bad bodies.
    before = await room_count(hs)
    status, body = await upgrade(hs, bob, old, {"new_version": "12"})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await upgrade(hs, alice, old, {"new_version": "99"})
    assert (status, body["errcode"]) == (400, "M_UNSUPPORTED_ROOM_VERSION")
    status, body = await upgrade(hs, alice, old, {})
    assert status == 400
    assert await room_count(hs) == before
    assert (await alice.room_resolve_alias("#town:localhost")).room_id == old

    status, body = await upgrade(hs, alice, old, {"new_version": "12"})
    assert status == 200, body
    new = body["replacement_room"]
    assert new != old

    old_state = await state_of(alice, old)
    new_state = await state_of(alice, new)
    tombstone = old_state[("m.room.tombstone", "")]
    assert tombstone["sender"] == "@alice:localhost"
    assert tombstone["content"]["replacement_room"] == new
    assert tombstone["content"]["body"]

    create_event = new_state[("m.room.create", "")]
    assert create_event["sender"] == "@alice:localhost"
    assert create_event["content"]["room_version"] == "12"
    assert create_event["content"]["predecessor"]["room_id"] == old
    assert create_event["content"]["predecessor"]["event_id"].startswith("$")
    assert new_state[("m.room.name", "")]["content"]["name"] == "Town square"
    assert new_state[("m.room.topic", "")]["content"]["topic"] == "Everything local"
    assert new_state[("m.room.join_rules", "")]["content"]["join_rule"] == "public"
    assert new_state[("m.room.member", "@mallory:localhost")]["content"]["membership"] == "ban"
    # Alice created the new room: a room 12 creator, so not listed in users.
    levels = new_state[("m.room.power_levels", "")]["content"]
    assert levels["users"] == {"@bob:localhost": 50}
    assert levels["events"]["m.room.tombstone"] == 100

    # The old room is closed to ordinary members; the alias now leads to the new room.
    old_levels = old_state[("m.room.power_levels", "")]["content"]
    assert (old_levels["events_default"], old_levels["invite"]) == (50, 50)
    refused = await carol.room_send(old, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert isinstance(refused, nio.RoomSendError) and refused.status_code == "M_FORBIDDEN"
    resolved = await carol.room_resolve_alias("#town:localhost")
    assert resolved.room_id == new
    assert new_state[("m.room.canonical_alias", "")]["content"]["alias"] == "#town:localhost"
    assert "alias" not in old_state[("m.room.canonical_alias", "")]["content"]
    assert (await carol.room_get_visibility(new)).visibility == "public"
    assert (await carol.room_get_visibility(old)).visibility == "private"

    # Carol follows the tombstone and can talk in the new room.
    assert isinstance(await carol.join(new), nio.JoinResponse)
    sent = await carol.room_send(new, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert isinstance(sent, nio.RoomSendResponse), sent


async def test_upgrade_to_pre_12_version_lifts_then_restores_power(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    old = await create(
        alice,
        room_version="9",
        name="Old",
        preset=nio.RoomPreset.public_chat,
        power_level_override={
            "users": {"@alice:localhost": "100", "@bob:localhost": 50},
            "events": {"m.room.tombstone": 50, "m.room.power_levels": 100},
        },
    )
    assert isinstance(await bob.join(old), nio.JoinResponse)
    # Bob (50) may tombstone the room but not set every state event of the new one.
    status, body = await upgrade(hs, bob, old, {"new_version": "11"})
    assert status == 200, body
    new = body["replacement_room"]
    state = await state_of(bob, new)
    create_event = state[("m.room.create", "")]
    assert create_event["sender"] == "@bob:localhost"
    assert "creator" not in create_event["content"]  # room 11: the sender is the creator
    assert state[("m.room.name", "")]["content"]["name"] == "Old"
    assert ("m.room.member", "@alice:localhost") not in state
    # Lifted for the set-up, then put back; the room 9 string level became an integer.
    levels = state[("m.room.power_levels", "")]["content"]
    assert levels["users"] == {"@alice:localhost": 100, "@bob:localhost": 50}
    assert levels["events"]["m.room.tombstone"] == 50
    rows = await hs.pool.fetch(
        """SELECT json FROM events WHERE room_id = $1 AND type = 'm.room.power_levels'
           ORDER BY stream_ordering""",
        new,
    )
    assert [json.loads(r["json"])["content"]["users"]["@bob:localhost"] for r in rows] == [100, 50]
    # Bob may not change the old room's power levels, so they stay as they were.
    old_state = await state_of(alice, old)
    assert old_state[("m.room.tombstone", "")]["content"]["replacement_room"] == new
    assert old_state[("m.room.power_levels", "")]["content"]["events_default"] == 0


async def test_upgrade_needs_membership(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    old = await create(alice, name="Private")
    status, body = await upgrade(hs, bob, old, {"new_version": "12"})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await upgrade(hs, alice, "!nowhere:localhost", {"new_version": "12"})
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    state = await state_of(alice, old)
    assert ("m.room.tombstone", "") not in state


async def test_upgrade_names_the_tombstone_and_carries_settings_over(hs, login):
    """Room 10 to 11 (room ids chosen ahead): the new room's predecessor is the
    tombstone, guests may join as after Synapse's upgrade, and joining the new
    room carries the user's push rules, tags and m.direct over."""
    alice = await login("alice")
    bob = await login("bob")
    old = await create(alice, room_version="10", preset=nio.RoomPreset.public_chat)
    assert isinstance(await bob.join(old), nio.JoinResponse)
    rules = f"{V3}/pushrules/global"
    for path, body in (
        (f"{rules}/room/{old}", {"actions": ["dont_notify"]}),
        (
            f"{rules}/override/quiet-{old}",
            {
                "actions": [],
                "conditions": [{"kind": "event_match", "key": "room_id", "pattern": old}],
            },
        ),
        (f"{V3}/user/@bob:localhost/rooms/{old}/tags/u.work", {"order": 0.5}),
        (f"{V3}/user/@bob:localhost/account_data/m.direct", {"@alice:localhost": [old]}),
    ):
        status, result = await hs.request("PUT", path, token=bob.access_token, json=body)
        assert status == 200, result

    status, body = await upgrade(hs, alice, old, {"new_version": "11"})
    assert status == 200, body
    new = body["replacement_room"]
    tombstone = (await state_of(alice, old))[("m.room.tombstone", "")]
    new_state = await state_of(alice, new)
    assert new_state[("m.room.create", "")]["content"]["predecessor"] == {
        "room_id": old,
        "event_id": tombstone["event_id"],
    }
    assert new_state[("m.room.guest_access", "")]["content"] == {"guest_access": "can_join"}

    assert isinstance(await bob.join(new), nio.JoinResponse)
    status, ruleset = await hs.request("GET", f"{V3}/pushrules/", token=bob.access_token)
    assert status == 200
    room_rules = {r["rule_id"]: r["actions"] for r in ruleset["global"]["room"]}
    assert room_rules[new] == room_rules[old] == ["dont_notify"]
    overrides = {r["rule_id"]: r for r in ruleset["global"]["override"]}
    assert overrides[f"quiet-{new}"]["conditions"] == [
        {"kind": "event_match", "key": "room_id", "pattern": new}
    ]
    status, tags = await hs.request(
        "GET", f"{V3}/user/@bob:localhost/rooms/{new}/tags", token=bob.access_token
    )
    assert (status, tags) == (200, {"tags": {"u.work": {"order": 0.5}}})
    status, direct = await hs.request(
        "GET", f"{V3}/user/@bob:localhost/account_data/m.direct", token=bob.access_token
    )
    assert (status, direct) == (200, {"@alice:localhost": [old, new]})
