"""Restricted joins across servers (rooms 8+, join rules `restricted` and
`knock_restricted`).

Our rooms: a scripted remote's user who is in the allowed room (as we see
it) is given a template naming one of our members able to invite, and the
join comes back signed by us; others are refused with the spec's errcodes.
Remote rooms: our user's join names the resident server's user, and that
server's signature comes back on it; a server that cannot authorise the join
is passed over for the next one.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from signedjson.key import get_verify_key

from homeserver.events.hashing import compute_event_id
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote, path_quote
from tests.federation.hosted_room import V1, HostedRoom
from tests.federation.test_joins import make_join, send_join, sign_join
from tests.federation.test_serving import Room, check_pdu, our_key_lookup

CLIENT = "/_matrix/client/v3"
AUTHORISER = "join_authorised_via_users_server"


async def create_room(hs: RunningServer, token: str, version: str, **body: Any) -> str:
    status, created = await hs.request(
        "POST", f"{CLIENT}/createRoom", token=token, json={"room_version": version, **body}
    )
    assert status == 200, created
    return created["room_id"]


def restricted_rule(rule: str, *allowed: str) -> dict[str, Any]:
    return {
        "type": "m.room.join_rules",
        "state_key": "",
        "content": {
            "join_rule": rule,
            "allow": [{"type": "m.room_membership", "room_id": r} for r in allowed],
        },
    }


async def restricted_room(
    hs: RunningServer, token: str, rule: str, *allowed: str, version: str = "10", **body: Any
) -> str:
    return await create_room(
        hs,
        token,
        version,
        preset="private_chat",
        initial_state=[restricted_rule(rule, *allowed)],
        **body,
    )


def event_id_of(pdu: dict[str, Any], version: str) -> str:
    return compute_event_id(pdu, KNOWN_ROOM_VERSIONS[version])


async def joined_members(hs: RunningServer, token: str, room_id: str) -> set[str]:
    status, body = await hs.request("GET", f"{CLIENT}/rooms/{room_id}/joined_members", token=token)
    assert status == 200, body
    return set(body["joined"])


async def remote_joins(
    remote: ScriptedRemote, hs: RunningServer, room_id: str, user_id: str, version: str
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """make_join then send_join: (template, send_join answer, event id)."""
    status, made = await make_join(remote, hs, room_id, user_id, version)
    assert status == 200, made
    status, joined, event_id = await send_join(
        remote, hs, room_id, sign_join(remote, made["event"], version), version
    )
    assert status == 200, joined
    return made["event"], joined, event_id


@pytest.fixture
async def alice(fed_hs: RunningServer) -> str:
    return (await fed_hs.register("alice"))["access_token"]


@pytest.fixture
async def space(fed_hs: RunningServer, alice: str) -> str:
    """A public space of ours, for the restricted rooms to allow."""
    return await create_room(
        fed_hs, alice, "10", preset="public_chat", creation_content={"type": "m.space"}
    )


@pytest.mark.parametrize("rule", ["restricted", "knock_restricted"])
async def test_a_remote_member_of_the_space_joins_a_restricted_room(
    fed_hs: RunningServer, remote: ScriptedRemote, alice: str, space: str, rule: str
) -> None:
    room_id = await restricted_room(fed_hs, alice, rule, space)
    bob = f"@bob:{remote.server_name}"
    await remote_joins(remote, fed_hs, space, bob, "10")

    template, joined, event_id = await remote_joins(remote, fed_hs, room_id, bob, "10")
    assert template["content"] == {"membership": "join", AUTHORISER: "@alice:localhost"}
    # The join comes back with our signature (the one the auth rules need) next to the remote's.
    event = joined["event"]
    assert event["content"][AUTHORISER] == "@alice:localhost"
    assert set(event["signatures"]) == {"localhost", remote.server_name}
    lookup = await our_key_lookup(remote, fed_hs)
    remote_key = get_verify_key(remote.signing_key)

    def both(server: str, key_id: str) -> Any:
        return remote_key if server == remote.server_name else lookup(server, key_id)

    check_pdu(event, Room(room_id, "10", alice, []), both, event_id)
    assert await joined_members(fed_hs, alice, room_id) == {"@alice:localhost", bob}
    # Stored (and sent on to the room's servers) with our signature.
    stored = (await fed_hs.server.event_store.get_events([event_id]))[event_id]
    assert set(stored.event.pdu["signatures"]) == {"localhost", remote.server_name}
    assert stored.event.content[AUTHORISER] == "@alice:localhost"

    # Joined already: a new join (say, a profile change) needs nobody's word.
    status, made = await make_join(remote, fed_hs, room_id, bob, "10")
    assert status == 200, made
    assert made["event"]["content"] == {"membership": "join"}


async def test_the_most_powerful_member_able_to_invite_is_named(
    fed_hs: RunningServer, remote: ScriptedRemote, alice: str, space: str
) -> None:
    zed = (await fed_hs.register("zed"))["access_token"]
    room_id = await restricted_room(
        fed_hs,
        alice,
        "restricted",
        space,
        invite=["@zed:localhost"],
        power_level_content_override={"users": {"@alice:localhost": 100, "@zed:localhost": 150}},
    )
    status, body = await fed_hs.request("POST", f"{CLIENT}/join/{room_id}", token=zed, json={})
    assert status == 200, body
    bob = f"@bob:{remote.server_name}"
    await remote_joins(remote, fed_hs, space, bob, "10")
    status, made = await make_join(remote, fed_hs, room_id, bob, "10")
    assert status == 200, made
    assert made["event"]["content"][AUTHORISER] == "@zed:localhost"


async def test_refusals(
    fed_hs: RunningServer, remote: ScriptedRemote, alice: str, space: str
) -> None:
    bob, carol = f"@bob:{remote.server_name}", f"@carol:{remote.server_name}"
    await remote_joins(remote, fed_hs, space, bob, "10")
    room_id = await restricted_room(fed_hs, alice, "restricted", space)

    # Not in the space, which we are in: no.
    status, body = await make_join(remote, fed_hs, room_id, carol, "10")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    # Allowed rooms this server is not in: it cannot tell, another server might.
    elsewhere = await restricted_room(fed_hs, alice, "restricted", f"!unknown:{remote.server_name}")
    status, body = await make_join(remote, fed_hs, elsewhere, bob, "10")
    assert (status, body["errcode"]) == (400, "M_UNABLE_TO_AUTHORISE_JOIN")
    # A room we left is not one we can judge either.
    left = await create_room(fed_hs, alice, "10", preset="public_chat")
    await remote_joins(remote, fed_hs, left, carol, "10")
    status, _ = await fed_hs.request("POST", f"{CLIENT}/rooms/{left}/leave", token=alice, json={})
    assert status == 200
    status, body = await make_join(
        remote, fed_hs, await restricted_room(fed_hs, alice, "restricted", left), carol, "10"
    )
    assert (status, body["errcode"]) == (400, "M_UNABLE_TO_AUTHORISE_JOIN")

    # Nobody here may invite.
    powerless = await restricted_room(
        fed_hs,
        alice,
        "restricted",
        space,
        power_level_content_override={
            "users": {"@alice:localhost": 50},
            "invite": 100,
            "state_default": 50,
            "events": {},
        },
    )
    status, body = await make_join(remote, fed_hs, powerless, bob, "10")
    assert (status, body["errcode"]) == (400, "M_UNABLE_TO_GRANT_JOIN")

    # Room version 7 has no restricted rule: the room stays closed.
    old = await restricted_room(fed_hs, alice, "restricted", space, version="7")
    status, body = await make_join(remote, fed_hs, old, bob, "7")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    assert await joined_members(fed_hs, alice, room_id) == {"@alice:localhost"}


async def test_send_join_vouches_only_for_what_make_join_would(
    fed_hs: RunningServer, remote: ScriptedRemote, alice: str, space: str
) -> None:
    bob, carol = f"@bob:{remote.server_name}", f"@carol:{remote.server_name}"
    await remote_joins(remote, fed_hs, space, bob, "10")
    room_id = await restricted_room(fed_hs, alice, "restricted", space)
    status, made = await make_join(remote, fed_hs, room_id, bob, "10")
    assert status == 200, made
    template = made["event"]

    # Carol, not in the space, copies bob's template.
    forged = {**template, "sender": carol, "state_key": carol}
    status, body, _ = await send_join(
        remote, fed_hs, room_id, sign_join(remote, forged, "10"), "10"
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    # Another server's user named as the authoriser: we sign only for ours.
    other = {**template, "content": {"membership": "join", AUTHORISER: carol}}
    status, body, _ = await send_join(remote, fed_hs, room_id, sign_join(remote, other, "10"), "10")
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    # One of ours who is not in the room.
    await fed_hs.register("dave")
    absent = {**template, "content": {"membership": "join", AUTHORISER: "@dave:localhost"}}
    status, body, _ = await send_join(
        remote, fed_hs, room_id, sign_join(remote, absent, "10"), "10"
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    # Without an authoriser the restricted room stays closed.
    bare = {**template, "content": {"membership": "join"}}
    status, body, _ = await send_join(remote, fed_hs, room_id, sign_join(remote, bare, "10"), "10")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert await joined_members(fed_hs, alice, room_id) == {"@alice:localhost"}

    # Bob left the space between make_join and send_join: no longer vouched for.
    status, made_leave = await remote.request(
        fed_hs, "GET", f"{V1}/make_leave/{path_quote(space)}/{path_quote(bob)}"
    )
    assert status == 200, made_leave
    leave = sign_join(remote, made_leave["event"], "10")
    status, body = await remote.request(
        fed_hs,
        "PUT",
        f"/_matrix/federation/v2/send_leave/{path_quote(space)}/"
        + path_quote(event_id_of(leave, "10")),
        json_body=leave,
    )
    assert status == 200, body
    status, body, _ = await send_join(
        remote, fed_hs, room_id, sign_join(remote, template, "10"), "10"
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert await joined_members(fed_hs, alice, room_id) == {"@alice:localhost"}


async def test_knock_restricted_lets_others_knock(
    fed_hs: RunningServer, remote: ScriptedRemote, alice: str, space: str
) -> None:
    room_id = await restricted_room(fed_hs, alice, "knock_restricted", space)
    carol = f"@carol:{remote.server_name}"
    status, body = await make_join(remote, fed_hs, room_id, carol, "10")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, made = await remote.request(
        fed_hs, "GET", f"{V1}/make_knock/{path_quote(room_id)}/{path_quote(carol)}?ver=10"
    )
    assert status == 200, made
    knock = sign_join(remote, made["event"], "10")
    status, body = await remote.request(
        fed_hs,
        "PUT",
        f"{V1}/send_knock/{path_quote(room_id)}/{path_quote(event_id_of(knock, '10'))}",
        json_body=knock,
    )
    assert status == 200, body
    status, state = await fed_hs.request(
        "GET", f"{CLIENT}/rooms/{room_id}/state/m.room.member/{carol}", token=alice
    )
    assert (status, state["membership"]) == (200, "knock")


class RestrictedHostedRoom(HostedRoom):
    """A remote room whose join rule admits members of `allowed` rooms, where
    only its creator may invite; its make_join names the creator as the
    authoriser."""

    def __init__(self, remote: ScriptedRemote, *allowed: str) -> None:
        super().__init__(remote, "10")
        self.send(
            "m.room.power_levels",
            {"users": {self.alice: 100}, "invite": 50, "kick": 50, "ban": 50},
            state_key="",
        )
        self.send(
            "m.room.join_rules",
            {
                "join_rule": "restricted",
                "allow": [{"type": "m.room_membership", "room_id": r} for r in allowed],
            },
            state_key="",
        )

    def template(self, user_id: str, membership: str) -> dict[str, Any]:
        if membership != "join":
            return super().template(user_id, membership)
        event = self.build(
            "m.room.member",
            {"membership": "join", AUTHORISER: self.alice},
            state_key=user_id,
            sender=user_id,
        )
        pdu = {k: v for k, v in event.pdu.items() if k not in ("hashes", "signatures", "event_id")}
        return {"room_version": self.version.identifier, "event": pdu}


async def test_our_user_joins_a_remote_restricted_room(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    # The first server named cannot judge the space; the resident one can.
    unable = await remote_factory(start=False)
    asked: list[str] = []

    async def cannot_authorise(request: web.Request) -> web.Response:
        asked.append(request.match_info["userId"])
        return web.json_response(
            {"errcode": "M_UNABLE_TO_AUTHORISE_JOIN", "error": "no idea"}, status=400
        )

    unable.app.router.add_get(f"{V1}/make_join/{{roomId}}/{{userId}}", cannot_authorise)
    await unable.start()
    remote = await remote_factory(start=False)
    room = RestrictedHostedRoom(remote, f"!space:{remote.server_name}")
    room.serve()
    await remote.start()
    await remote.expect_keys_of(fed_hs)
    token = (await fed_hs.register("bob"))["access_token"]

    status, body = await fed_hs.request(
        "POST",
        f"{CLIENT}/join/{room.room_id}?server_name={unable.server_name}"
        f"&server_name={remote.server_name}",
        token=token,
        json={},
    )
    assert status == 200, body
    assert asked == ["@bob:localhost"]
    [(endpoint, join)] = room.handshakes
    assert endpoint == "send_join"
    assert join.content[AUTHORISER] == room.alice
    # Stored as the resident server signed it: the signature the auth rules need.
    stored = (await fed_hs.server.event_store.get_events([join.event_id]))[join.event_id]
    assert set(stored.event.pdu["signatures"]) == {"localhost", remote.server_name}
    assert await joined_members(fed_hs, token, room.room_id) == {room.alice, "@bob:localhost"}


async def test_a_restricted_join_without_the_residents_signature_is_refused(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = RestrictedHostedRoom(remote, f"!space:{remote.server_name}")

    def unsigned_join(answer: dict[str, Any]) -> dict[str, Any]:
        del answer["event"]
        return answer

    room.serve(unsigned_join)
    await remote.start()
    await remote.expect_keys_of(fed_hs)
    token = (await fed_hs.register("bob"))["access_token"]

    status, body = await fed_hs.request(
        "POST",
        f"{CLIENT}/join/{room.room_id}?server_name={remote.server_name}",
        token=token,
        json={},
    )
    assert (status, body["errcode"]) == (502, "M_UNKNOWN")
    status, body = await fed_hs.request("GET", f"{CLIENT}/joined_rooms", token=token)
    assert body["joined_rooms"] == []


async def test_a_resident_server_without_a_member_able_to_invite_joins_through_another(
    fed_hs: RunningServer, remote_factory: Any, alice: str, space: str
) -> None:
    remote = await remote_factory(start=False)
    room = RestrictedHostedRoom(remote, space)
    room.serve()

    async def transaction(_request: web.Request, _origin: str, _body: Any) -> Any:
        # Our server sends bob's join on; a failed delivery would back it off the remote.
        return {"pdus": {}}

    remote.app.router.add_put(f"{V1}/send/{{txnId}}", remote.handler(transaction))
    await remote.start()
    await remote.expect_keys_of(fed_hs)
    bob = (await fed_hs.register("bob"))["access_token"]
    carol = (await fed_hs.register("carol"))["access_token"]
    dave = (await fed_hs.register("dave"))["access_token"]
    for token in (bob, carol):
        status, body = await fed_hs.request("POST", f"{CLIENT}/join/{space}", token=token, json={})
        assert status == 200, body

    status, body = await fed_hs.request(
        "POST", f"{CLIENT}/join/{room.room_id}?server_name={remote.server_name}", token=bob, json={}
    )
    assert status == 200, body
    # Now this server is in the room, but bob may not invite: the remote vouches for carol.
    status, body = await fed_hs.request(
        "POST", f"{CLIENT}/join/{room.room_id}", token=carol, json={}
    )
    assert status == 200, body
    assert [e.sender for _, e in room.handshakes] == ["@bob:localhost", "@carol:localhost"]
    event_id = room.handshakes[-1][1].event_id
    stored = (await fed_hs.server.event_store.get_events([event_id]))[event_id]
    assert stored.event.content[AUTHORISER] == room.alice
    assert set(stored.event.pdu["signatures"]) == {"localhost", remote.server_name}
    assert await joined_members(fed_hs, bob, room.room_id) == {
        room.alice,
        "@bob:localhost",
        "@carol:localhost",
    }

    # Dave is in no allowed room: refused here, without asking anyone.
    status, body = await fed_hs.request(
        "POST", f"{CLIENT}/join/{room.room_id}", token=dave, json={}
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert len(room.handshakes) == 2


async def test_a_join_naming_our_user_without_our_signature_is_refused(
    fed_hs: RunningServer, remote: ScriptedRemote, alice: str, space: str
) -> None:
    """Sent in a transaction rather than through send_join, the join lacks
    the signature of the authoriser's server that the spec requires."""
    bob = f"@bob:{remote.server_name}"
    await remote_joins(remote, fed_hs, space, bob, "10")
    room_id = await restricted_room(fed_hs, alice, "restricted", space)
    status, made = await make_join(remote, fed_hs, room_id, bob, "10")
    assert status == 200, made
    pdu = sign_join(remote, made["event"], "10")
    status, body = await remote.request(
        fed_hs,
        "PUT",
        f"{V1}/send/restricted1",
        json_body={
            "origin": remote.server_name,
            "origin_server_ts": made["event"]["origin_server_ts"],
            "pdus": [pdu],
            "edus": [],
        },
    )
    assert status == 200, body
    assert "localhost" in body["pdus"][event_id_of(pdu, "10")]["error"]
    assert await joined_members(fed_hs, alice, room_id) == {"@alice:localhost"}
