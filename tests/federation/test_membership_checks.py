"""Server-server changes of spec v1.14-v1.18 around membership: the checks of
PDUs given to the membership endpoints (400 M_INVALID_PARAM), stripped state
as full PDUs with the create event (MSC4311), send_join without `origin`, and
the generic `GET /query/{queryType}`."""

from __future__ import annotations

from typing import Any

from homeserver.events.event import parse_event
from homeserver.events.hashing import compute_event_id
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote, path_quote
from tests.federation.hosted_room import CREATE, NAME, V2, HostedRoom
from tests.federation.test_handshakes_join import CLIENT, started, sync
from tests.federation.test_handshakes_leave_knock import handshake
from tests.federation.test_joins import make_join, send_join, sign_join
from tests.federation.test_serving import Room, check_pdu, our_key_lookup
from tests.sliding_sync.helpers import User, all_rooms

V1 = "/_matrix/federation/v1"
BOB = "@bob:localhost"
STRIPPED = {"type", "state_key", "content", "sender"}


async def test_unknown_query_types_are_not_found(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    await fed_hs.register("alice")
    status, body = await remote.request(
        fed_hs, "GET", f"{V1}/query/profile?user_id=%40alice%3Alocalhost"
    )
    assert status == 200 and "displayname" in body
    status, body = await remote.request(fed_hs, "GET", f"{V1}/query/org.example.weather?city=x")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def _invite(
    room: HostedRoom, hs: RunningServer, state: list[dict[str, Any]]
) -> tuple[int, Any]:
    event = room.build("m.room.member", {"membership": "invite"}, state_key=BOB)
    return await room.remote.request(
        hs,
        "PUT",
        f"{V2}/invite/{path_quote(room.room_id)}/{path_quote(event.event_id)}",
        json_body={
            "room_version": room.version.identifier,
            "event": dict(event.pdu),
            "invite_room_state": state,
        },
    )


async def test_invite_room_state_of_room_12_is_checked(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, "12")
    other = HostedRoom(remote, "12")
    await started(remote, fed_hs)
    bob = User(fed_hs, await fed_hs.register("bob"))
    token = bob.token
    create, name = dict(room.state[CREATE].pdu), dict(room.state[NAME].pdu)

    refused = [
        # No create event.
        [name],
        # The create event of another room.
        [dict(other.state[CREATE].pdu), name],
        # A PDU whose signature does not verify.
        [create, {**name, "content": {"name": "Changed"}}],
        # Not a PDU of the room's version (no auth_events).
        [create, {k: v for k, v in name.items() if k != "auth_events"}],
    ]
    for state in refused:
        status, body = await _invite(room, fed_hs, state)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), state
    assert room.room_id not in (await sync(fed_hs, token)).get("rooms", {}).get("invite", {})

    # Full PDUs: taken, and shown to the client as stripped events.
    status, body = await _invite(room, fed_hs, [create, name])
    assert status == 200, body
    shown = (await sync(fed_hs, token))["rooms"]["invite"][room.room_id]["invite_state"]
    by_key = {(e["type"], e["state_key"]): e for e in shown["events"]}
    assert set(by_key[CREATE]) == STRIPPED and set(by_key[NAME]) == STRIPPED
    assert by_key[NAME]["content"] == {"name": "The remote room"}
    # And so does sliding sync.
    sliding = await bob.sync_ok(all_rooms(filters={"is_invite": True}))
    events = sliding["rooms"][room.room_id]["invite_state"]
    assert {(e["type"], e["state_key"]) for e in events} >= {CREATE, NAME}
    assert all(set(e) == STRIPPED for e in events[:-1])


async def test_stripped_form_from_older_servers_is_still_taken(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    """Servers before MSC4311 (Synapse 1.142) send stripped events: taken when
    the create event is among them."""
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, "12")
    await started(remote, fed_hs)
    await fed_hs.register("bob")
    status, body = await _invite(room, fed_hs, [room.stripped(NAME)])
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await _invite(room, fed_hs, [room.stripped(CREATE), room.stripped(NAME)])
    assert status == 200, body


async def test_knock_room_state_is_full_pdus_with_the_create_event(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    token = (await fed_hs.register("alice"))["access_token"]
    knock_rule = {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}
    status, body = await fed_hs.request(
        "POST",
        f"{CLIENT}/createRoom",
        token=token,
        json={"room_version": "12", "name": "Knock here", "initial_state": [knock_rule]},
    )
    assert status == 200, body
    room_id = body["room_id"]

    status, body = await handshake(
        remote, fed_hs, room_id, f"@bob:{remote.server_name}", "knock", "12"
    )
    assert status == 200, body
    lookup = await our_key_lookup(remote, fed_hs)
    room = Room(room_id, "12", token, [])
    version = KNOWN_ROOM_VERSIONS["12"]
    kinds = set()
    for pdu in body["knock_room_state"]:
        check_pdu(pdu, room, lookup)
        event = parse_event(pdu, version)
        assert event.room_id == room_id
        kinds.add((event.type, event.state_key))
    assert {CREATE, NAME, ("m.room.join_rules", "")} <= kinds


async def test_membership_pdus_failing_the_spec_checks_are_invalid_params(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    token = (await fed_hs.register("alice"))["access_token"]
    status, body = await fed_hs.request(
        "POST", f"{CLIENT}/createRoom", token=token, json={"preset": "public_chat"}
    )
    room_id = body["room_id"]
    bob = f"@bob:{remote.server_name}"
    status, made = await make_join(remote, fed_hs, room_id, bob, "12")
    assert status == 200, made
    template = made["event"]

    carol = "@carol:other.example"
    wrong = sign_join(remote, {**template, "state_key": carol}, "12")
    status, body, _ = await send_join(remote, fed_hs, room_id, wrong, "12")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    typed = sign_join(remote, {**template, "type": "m.room.message"}, "12")
    status, body, _ = await send_join(remote, fed_hs, room_id, typed, "12")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")

    # The good join: no `origin` in the answer any more (spec v1.14).
    status, joined, _ = await send_join(
        remote, fed_hs, room_id, sign_join(remote, template, "12"), "12"
    )
    assert status == 200, joined
    assert "origin" not in joined and joined["members_omitted"] is False

    # send_leave: a knock is not a leave.
    status, made_leave = await remote.request(
        fed_hs, "GET", f"{V1}/make_leave/{path_quote(room_id)}/{path_quote(bob)}"
    )
    assert status == 200, made_leave
    knock = sign_join(remote, {**made_leave["event"], "content": {"membership": "knock"}}, "12")
    event_id = compute_event_id(knock, KNOWN_ROOM_VERSIONS["12"])
    status, body = await remote.request(
        fed_hs,
        "PUT",
        f"{V2}/send_leave/{path_quote(room_id)}/{path_quote(event_id)}",
        json_body=knock,
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def _partial_join(
    remote: ScriptedRemote, hs: RunningServer, room_id: str, user: str, flag: str
) -> tuple[int, Any]:
    status, made = await make_join(remote, hs, room_id, user, "12")
    assert status == 200, made
    pdu = sign_join(remote, made["event"], "12")
    event_id = compute_event_id(pdu, KNOWN_ROOM_VERSIONS["12"])
    return await remote.request(
        hs,
        "PUT",
        f"{V2}/send_join/{path_quote(room_id)}/{path_quote(event_id)}?omit_members={flag}",
        json_body=pdu,
    )


async def test_send_join_without_members(fed_hs: RunningServer, remote: ScriptedRemote) -> None:
    alice = (await fed_hs.register("alice"))["access_token"]
    carol = (await fed_hs.register("carol"))["access_token"]
    await fed_hs.register("dave")
    status, body = await fed_hs.request(
        "POST",
        f"{CLIENT}/createRoom",
        token=alice,
        json={"preset": "public_chat", "invite": ["@dave:localhost"]},
    )
    unnamed = body["room_id"]
    status, _ = await fed_hs.request("POST", f"{CLIENT}/join/{unnamed}", token=carol, json={})
    assert status == 200
    lookup = await our_key_lookup(remote, fed_hs)

    status, body = await _partial_join(
        remote, fed_hs, unnamed, f"@bob:{remote.server_name}", "maybe"
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, joined = await _partial_join(
        remote, fed_hs, unnamed, f"@bob:{remote.server_name}", "true"
    )
    assert status == 200, joined
    assert joined["members_omitted"] is True and joined["servers_in_room"] == ["localhost"]
    room = Room(unnamed, "12", alice, [])
    kinds = {}
    for pdu in joined["state"]:
        check_pdu(pdu, room, lookup)
        kinds[(pdu["type"], pdu["state_key"])] = pdu
    # No name and no alias: the heroes' member events stay, for the room's name.
    members = {k[1] for k in kinds if k[0] == "m.room.member"}
    assert members == {"@alice:localhost", "@carol:localhost", "@dave:localhost"}
    assert {CREATE, ("m.room.power_levels", ""), ("m.room.join_rules", "")} <= set(kinds)
    # The auth chain checks out too.
    assert all(check_pdu(p, room, lookup) for p in joined["auth_chain"])

    # A named room: no member events at all.
    status, body = await fed_hs.request(
        "POST", f"{CLIENT}/createRoom", token=alice, json={"preset": "public_chat", "name": "Hi"}
    )
    status, joined = await _partial_join(
        remote, fed_hs, body["room_id"], f"@erin:{remote.server_name}", "true"
    )
    assert status == 200, joined
    assert [p for p in joined["state"] if p["type"] == "m.room.member"] == []
    assert joined["members_omitted"] is True and joined["servers_in_room"] == ["localhost"]
    # Without the flag, the whole state as before.
    status, joined = await _partial_join(
        remote, fed_hs, body["room_id"], f"@fred:{remote.server_name}", "false"
    )
    assert status == 200, joined
    assert joined["members_omitted"] is False and "servers_in_room" not in joined
    assert any(p["type"] == "m.room.member" for p in joined["state"])
