"""createRoom, driven by matrix-nio and raw HTTP: presets, options, versions, errors."""

from __future__ import annotations

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


async def room_events(hs: Any, room_id: str) -> list[tuple[str, str | None]]:
    """(type, state_key) of every event of the room, in the order the server made them."""
    rows = await hs.pool.fetch(
        "SELECT type, state_key FROM events WHERE room_id = $1 ORDER BY stream_ordering", room_id
    )
    return [(r["type"], r["state_key"]) for r in rows]


async def count_rooms(hs: Any) -> int:
    return await hs.pool.fetchval("SELECT count(*) FROM rooms")


async def test_private_chat_with_name_topic_and_direct_invite(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    assert isinstance(await bob.set_displayname("Bob"), nio.ProfileSetDisplayNameResponse)
    room_id = await create(
        alice,
        preset=nio.RoomPreset.private_chat,
        name="Plans",
        topic="What next",
        invite=["@bob:localhost"],
        is_direct=True,
        room_version="10",
    )
    assert room_id.startswith("!") and room_id.endswith(":localhost")
    state = await state_of(alice, room_id)
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": "invite"}
    assert state[("m.room.history_visibility", "")]["content"] == {"history_visibility": "shared"}
    assert state[("m.room.guest_access", "")]["content"] == {"guest_access": "can_join"}
    assert state[("m.room.name", "")]["content"] == {"name": "Plans"}
    assert state[("m.room.topic", "")]["content"] == {
        "topic": "What next",
        "m.topic": {"m.text": [{"body": "What next"}]},
    }
    levels = state[("m.room.power_levels", "")]["content"]
    assert levels == {
        "users": {"@alice:localhost": 100},
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
    }
    create_event = state[("m.room.create", "")]
    assert create_event["content"] == {
        "room_version": "10",
        "creator": "@alice:localhost",
        "m.federate": True,
    }
    invite = state[("m.room.member", "@bob:localhost")]
    assert invite["sender"] == "@alice:localhost"
    assert invite["content"] == {"membership": "invite", "displayname": "Bob", "is_direct": True}
    joined = state[("m.room.member", "@alice:localhost")]["content"]
    assert joined["membership"] == "join"
    # The spec's order of events.
    assert await room_events(hs, room_id) == [
        ("m.room.create", ""),
        ("m.room.member", "@alice:localhost"),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.guest_access", ""),
        ("m.room.name", ""),
        ("m.room.topic", ""),
        ("m.room.member", "@bob:localhost"),
    ]
    # Not a public room: nothing in the directory.
    assert not await hs.pool.fetchval("SELECT is_public FROM rooms WHERE room_id = $1", room_id)


async def test_public_chat_with_alias_and_visibility(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    room_id = await create(alice, visibility=nio.RoomVisibility.public, alias="town-square")
    state = await state_of(alice, room_id)
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": "public"}
    assert state[("m.room.history_visibility", "")]["content"] == {"history_visibility": "shared"}
    # Like Synapse: no guest_access event, which means "forbidden".
    assert ("m.room.guest_access", "") not in state
    assert state[("m.room.canonical_alias", "")]["content"] == {"alias": "#town-square:localhost"}
    levels = state[("m.room.power_levels", "")]["content"]
    assert levels["invite"] == 50
    assert levels["events"]["m.room.tombstone"] == 150  # room 12, the default
    assert await hs.pool.fetchval("SELECT is_public FROM rooms WHERE room_id = $1", room_id)
    assert [t for t, _ in await room_events(hs, room_id)] == [
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
        "m.room.canonical_alias",
        "m.room.join_rules",
        "m.room.history_visibility",
    ]
    # The alias leads to the room.
    joined = await bob.join("#town-square:localhost")
    assert isinstance(joined, nio.JoinResponse), joined
    assert joined.room_id == room_id


async def test_trusted_private_chat_gives_invitees_the_creators_power(hs, login):
    alice = await login("alice")
    await login("bob")
    room_id = await create(
        alice,
        preset=nio.RoomPreset.trusted_private_chat,
        invite=["@bob:localhost"],
        room_version="10",
    )
    levels = (await state_of(alice, room_id))[("m.room.power_levels", "")]["content"]
    assert levels["users"] == {"@alice:localhost": 100, "@bob:localhost": 100}
    assert levels["invite"] == 0

    # Room 12: creators are in the create event, not in the power levels.
    room_id = await create(
        alice, preset=nio.RoomPreset.trusted_private_chat, invite=["@bob:localhost"]
    )
    state = await state_of(alice, room_id)
    assert state[("m.room.create", "")]["content"]["additional_creators"] == ["@bob:localhost"]
    assert state[("m.room.power_levels", "")]["content"]["users"] == {}
    assert state[("m.room.member", "@bob:localhost")]["content"]["membership"] == "invite"


async def test_room_version_12_ids_and_creator_power(hs, login):
    alice = await login("alice")
    room_id = await create(alice, room_version="12")
    assert room_id.startswith("!") and ":" not in room_id
    state = await state_of(alice, room_id)
    create_event = state[("m.room.create", "")]
    assert room_id == "!" + create_event["event_id"][1:]
    assert "creator" not in create_event["content"]
    assert create_event["content"]["room_version"] == "12"
    assert state[("m.room.power_levels", "")]["content"]["users"] == {}
    # The creator has all power: setting a state event that needs 100 works.
    resp = await alice.room_put_state(
        room_id, "m.room.server_acl", {"allow": ["*"], "deny": [], "allow_ip_literals": True}
    )
    assert isinstance(resp, nio.RoomPutStateResponse), resp


async def test_unsupported_room_version_creates_nothing(hs, login):
    alice = await login("alice")
    resp = await alice.room_create(room_version="99")
    assert isinstance(resp, nio.RoomCreateError)
    assert resp.status_code == "M_UNSUPPORTED_ROOM_VERSION"
    status, body = await hs.request(
        "POST", f"{V3}/createRoom", token=alice.access_token, json={"room_version": 10}
    )
    # A version that is no string at all is malformed JSON, as in Synapse.
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    assert await count_rooms(hs) == 0


async def test_initial_state_overrides_preset_and_name_overrides_initial_state(hs, login):
    alice = await login("alice")
    room_id = await create(
        alice,
        preset=nio.RoomPreset.private_chat,
        name="From the body",
        initial_state=[
            {"type": "m.room.join_rules", "content": {"join_rule": "public"}},
            {"type": "m.room.name", "content": {"name": "From initial_state"}},
            {"type": "org.example.settings", "state_key": "colour", "content": {"v": "blue"}},
            {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
        ],
    )
    state = await state_of(alice, room_id)
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": "public"}
    assert state[("m.room.name", "")]["content"] == {"name": "From the body"}
    assert state[("org.example.settings", "colour")]["content"] == {"v": "blue"}
    assert state[("m.room.encryption", "")]["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
    events = await room_events(hs, room_id)
    # One join rules event (initial_state's), and initial_state comes in its order.
    assert [e for e in events if e[0] == "m.room.join_rules"] == [("m.room.join_rules", "")]
    assert events[3:] == [
        ("m.room.history_visibility", ""),
        ("m.room.guest_access", ""),
        ("m.room.join_rules", ""),
        ("m.room.name", ""),
        ("org.example.settings", "colour"),
        ("m.room.encryption", ""),
        ("m.room.name", ""),
    ]


async def test_power_level_override_and_initial_state_power_levels(hs, login):
    alice = await login("alice")
    await login("bob")
    room_id = await create(
        alice,
        room_version="11",
        power_level_override={
            "events_default": 20,
            "users": {"@alice:localhost": 100, "@bob:localhost": 40},
        },
    )
    levels = (await state_of(alice, room_id))[("m.room.power_levels", "")]["content"]
    assert levels["events_default"] == 20
    assert levels["users"] == {"@alice:localhost": 100, "@bob:localhost": 40}
    assert levels["kick"] == 50  # the rest of the defaults stay

    # A power levels event in initial_state replaces the defaults entirely.
    mine = {"users": {"@alice:localhost": 100}, "state_default": 10}
    room_id = await create(
        alice,
        room_version="11",
        initial_state=[{"type": "m.room.power_levels", "content": mine}],
    )
    state = await state_of(alice, room_id)
    assert state[("m.room.power_levels", "")]["content"] == mine
    assert [t for t, _ in await room_events(hs, room_id)].count("m.room.power_levels") == 1


async def test_creation_content_federate_and_space(hs, login):
    alice = await login("alice")
    room_id = await create(alice, federate=False, space=True, room_version="11")
    content = (await state_of(alice, room_id))[("m.room.create", "")]["content"]
    assert content == {"m.federate": False, "type": "m.space", "room_version": "11"}

    # The server's own keys win over the client's.
    status, body = await hs.request(
        "POST",
        f"{V3}/createRoom",
        token=alice.access_token,
        json={
            "room_version": "10",
            "creation_content": {"creator": "@mallory:localhost", "room_version": "1"},
        },
    )
    assert status == 200, body
    content = (await state_of(alice, body["room_id"]))[("m.room.create", "")]["content"]
    assert content == {"creator": "@alice:localhost", "room_version": "10"}


async def test_bad_requests_create_nothing(hs, login):
    alice = await login("alice")
    await create(alice, alias="taken")
    rooms_before = await count_rooms(hs)
    token = alice.access_token
    cases: list[tuple[Any, int, str]] = [
        ({"preset": "party"}, 400, "M_BAD_JSON"),
        ({"visibility": "secret"}, 400, "M_BAD_JSON"),
        ({"invite": ["not-a-user"]}, 400, "M_BAD_JSON"),
        ({"invite": "@bob:localhost"}, 400, "M_BAD_JSON"),
        ({"name": 5}, 400, "M_BAD_JSON"),
        ({"is_direct": "yes"}, 400, "M_BAD_JSON"),
        ({"initial_state": [{"type": "m.room.name"}]}, 400, "M_BAD_JSON"),
        ({"initial_state": [{"type": "m.room.create", "content": {}}]}, 400, "M_BAD_JSON"),
        ({"creation_content": []}, 400, "M_BAD_JSON"),
        ({"room_alias_name": "taken"}, 400, "M_ROOM_IN_USE"),
        ({"room_alias_name": "#full:localhost"}, 400, "M_INVALID_PARAM"),
        ({"room_alias_name": "two words"}, 400, "M_INVALID_PARAM"),
        # Power levels that leave the creator unable to set the join rules.
        (
            {"room_version": "10", "power_level_content_override": {"users": {}}},
            400,
            "M_INVALID_ROOM_STATE",
        ),
        # An initial_state event the creator may not send.
        (
            {
                "room_version": "10",
                "initial_state": [
                    {"type": "m.room.member", "state_key": "@bob:localhost", "content": {}}
                ],
            },
            400,
            "M_INVALID_ROOM_STATE",
        ),
        # Room 12 creators must not be listed in the power levels.
        (
            {"power_level_content_override": {"users": {"@alice:localhost": 100}}},
            400,
            "M_INVALID_ROOM_STATE",
        ),
    ]
    for body, status, errcode in cases:
        got_status, got = await hs.request("POST", f"{V3}/createRoom", token=token, json=body)
        assert (got_status, got["errcode"]) == (status, errcode), body
    status, got = await hs.request("POST", f"{V3}/createRoom", token=token, json=[1])
    assert (status, got["errcode"]) == (400, "M_BAD_JSON")
    status, got = await hs.request("POST", f"{V3}/createRoom", token=token, data=b"{nope")
    assert (status, got["errcode"]) == (400, "M_NOT_JSON")
    assert await count_rooms(hs) == rooms_before
    assert await hs.pool.fetchval("SELECT count(*) FROM room_aliases") == 1


async def test_joined_rooms_lists_created_rooms(login):
    alice = await login("alice")
    first = await create(alice)
    second = await create(alice, room_version="10")
    resp = await alice.joined_rooms()
    assert isinstance(resp, nio.JoinedRoomsResponse), resp
    assert sorted(resp.rooms) == sorted([first, second])
