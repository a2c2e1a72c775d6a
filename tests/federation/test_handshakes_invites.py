"""Invites across servers: a remote server invites our user (accepted through
make_join/send_join, or rejected through make_leave/send_leave), and our user
invites a remote one (their server signs the invite before we persist it)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from signedjson.key import generate_signing_key, get_verify_key

from homeserver.events.event import parse_event
from homeserver.events.redaction import redact
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.events.signing import sign_event, verify_event_signatures, verify_json_signature
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote, path_quote
from tests.federation.hosted_room import CREATE, NAME, V2, HostedRoom
from tests.federation.remote_room import RemoteRoom
from tests.federation.test_handshakes_join import CLIENT, started, sync
from tests.federation.test_serving import make_room, our_key_lookup

BOB = "@bob:localhost"


async def invited(fed_hs: RunningServer, remote_factory: Any) -> tuple[HostedRoom, str, str]:
    """A remote room whose server invited our bob; (room, bob's token, sync token)."""
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, "10")
    room.serve()
    await started(remote, fed_hs)
    token = (await fed_hs.register("bob"))["access_token"]
    before = (await sync(fed_hs, token))["next_batch"]

    status, body, invite = await room.invite(fed_hs, BOB)
    assert status == 200, body
    # Sent back with our signature next to the inviting server's.
    signed = body["event"]
    assert set(signed["signatures"]) == {"localhost", remote.server_name}
    lookup = await our_key_lookup(remote, fed_hs)
    verify_json_signature(redact(signed, room.version), "localhost", lookup)
    assert parse_event(signed, room.version).event_id == invite.event_id

    update = await sync(fed_hs, token, before)
    entry = update["rooms"]["invite"][room.room_id]["invite_state"]["events"]
    kinds = [(e["type"], e["state_key"]) for e in entry]
    assert kinds == [CREATE, NAME, ("m.room.member", BOB)]
    assert entry[1]["content"] == {"name": "The remote room"}
    assert entry[-1]["event_id"] == invite.event_id
    assert entry[-1]["sender"] == room.alice
    return room, token, update["next_batch"]


async def test_a_remote_invite_is_accepted_by_joining_through_the_inviter(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    room, token, since = await invited(fed_hs, remote_factory)

    # No via: the inviting server is the one to ask.
    status, body = await fed_hs.request(
        "POST", f"{CLIENT}/rooms/{room.room_id}/join", token=token, json={}
    )
    assert status == 200, body
    [(endpoint, join)] = room.handshakes
    assert (endpoint, join.sender, join.content["membership"]) == ("send_join", BOB, "join")
    rooms = (await sync(fed_hs, token, since))["rooms"]
    assert room.room_id in rooms["join"]
    assert room.room_id not in rooms.get("invite", {})
    timeline = rooms["join"][room.room_id]["timeline"]["events"]
    assert timeline[-1]["event_id"] == join.event_id


async def test_a_remote_invite_is_rejected_through_make_leave_and_send_leave(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    room, token, since = await invited(fed_hs, remote_factory)

    status, body = await fed_hs.request(
        "POST", f"{CLIENT}/rooms/{room.room_id}/leave", token=token, json={"reason": "no thanks"}
    )
    assert status == 200, body
    [(endpoint, leave)] = room.handshakes
    assert endpoint == "send_leave"
    assert leave.content == {"membership": "leave", "reason": "no thanks"}
    assert room.state[("m.room.member", BOB)].event_id == leave.event_id
    rooms = (await sync(fed_hs, token, since))["rooms"]
    assert room.room_id in rooms["leave"]
    assert room.room_id not in rooms.get("invite", {})
    status, body = await fed_hs.request("GET", f"{CLIENT}/sync", token=token)
    assert room.room_id not in body.get("rooms", {}).get("invite", {})


async def test_invites_for_someone_else_are_refused(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, "10")
    await started(remote, fed_hs)
    status, body, _ = await room.invite(fed_hs, "@nobody:localhost")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body, _ = await room.invite(fed_hs, "@bob:elsewhere.example")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    assert await fed_hs.server.event_store.room_version(room.room_id) is None


async def test_our_user_invites_a_remote_user(fed_hs: RunningServer, remote_factory: Any) -> None:
    remote: ScriptedRemote = await remote_factory(start=False)
    carol = f"@carol:{remote.server_name}"
    received: list[dict[str, Any]] = []

    async def invite(request: web.Request, _origin: str, body: Any) -> Any:
        version = KNOWN_ROOM_VERSIONS[body["room_version"]]
        event = parse_event(body["event"], version, event_id=request.match_info["eventId"])
        verify_event_signatures(
            body["event"], version, lambda _server, kid: remote.peer_keys.get(kid)
        )
        received.append(body)
        assert event.state_key == carol
        return {"event": sign_event(body["event"], remote.server_name, remote.signing_key, version)}

    remote.app.router.add_put(f"{V2}/invite/{{roomId}}/{{eventId}}", remote.handler(invite))
    await started(remote, fed_hs)
    token = (await fed_hs.register("alice"))["access_token"]
    room = await make_room(fed_hs, token, world_readable=False, name="Our room")

    status, body = await fed_hs.request(
        "POST", f"{CLIENT}/rooms/{room.room_id}/invite", token=token, json={"user_id": carol}
    )
    assert status == 200, body
    [sent] = received
    stripped = {(s["type"], s["state_key"]): s for s in sent["invite_room_state"]}
    assert stripped[NAME]["content"] == {"name": "Our room"}
    assert "signatures" in stripped[CREATE]  # the create event goes whole
    status, member = await fed_hs.request(
        "GET", f"{CLIENT}/rooms/{room.room_id}/state/m.room.member/{carol}", token=token
    )
    assert (status, member) == (200, {"membership": "invite"})
    event_id = parse_event(sent["event"], KNOWN_ROOM_VERSIONS[sent["room_version"]]).event_id
    stored = (await fed_hs.server.event_store.get_events([event_id]))[event_id]
    assert set(stored.event.pdu["signatures"]) == {"localhost", remote.server_name}
    remote_key = get_verify_key(remote.signing_key)
    verify_json_signature(
        redact(dict(stored.event.pdu), stored.event.room_version),
        remote.server_name,
        lambda _s, _k: remote_key,
    )


async def test_a_remote_members_invite_into_our_room_joins_the_dag(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    token = (await fed_hs.register("alice"))["access_token"]
    ours = await make_room(
        fed_hs,
        token,
        world_readable=False,
        name="Shared",
        room_version="10",
        power_level_content_override={"invite": 0},
    )
    room = await RemoteRoom.join(fed_hs, remote, ours.room_id)
    dave = (await fed_hs.register("dave"))["access_token"]
    invite = room.build("m.room.member", {"membership": "invite"}, state_key="@dave:localhost")

    status, body = await remote.request(
        fed_hs,
        "PUT",
        f"{V2}/invite/{path_quote(ours.room_id)}/{path_quote(invite.event_id)}",
        json_body={"room_version": "10", "event": dict(invite.pdu), "invite_room_state": []},
    )
    assert status == 200, body
    # In the room's state, seen by its local members, not only by the invitee.
    status, member = await fed_hs.request(
        "GET", f"{CLIENT}/rooms/{ours.room_id}/state/m.room.member/@dave:localhost", token=token
    )
    assert (status, member) == (200, {"membership": "invite"})
    entry = (await sync(fed_hs, dave))["rooms"]["invite"][ours.room_id]["invite_state"]["events"]
    names = [e["content"] for e in entry if e["type"] == "m.room.name"]
    assert names == [{"name": "Shared"}]
    assert entry[-1]["event_id"] == invite.event_id


async def test_an_invite_to_a_version_1_room_through_invite_v1(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, "1")
    await started(remote, fed_hs)
    token = (await fed_hs.register("bob"))["access_token"]
    invite = room.build("m.room.member", {"membership": "invite"}, state_key=BOB)
    pdu = {**invite.pdu, "unsigned": {"invite_room_state": [room.stripped(NAME)]}}

    status, body = await remote.request(
        fed_hs,
        "PUT",
        f"/_matrix/federation/v1/invite/{path_quote(room.room_id)}/{path_quote(invite.event_id)}",
        json_body=pdu,
    )
    assert status == 200, body
    assert body[0] == 200
    assert set(body[1]["event"]["signatures"]) == {"localhost", remote.server_name}
    entry = (await sync(fed_hs, token))["rooms"]["invite"][room.room_id]["invite_state"]["events"]
    assert [e["type"] for e in entry] == ["m.room.name", "m.room.member"]


async def test_an_invite_signed_with_another_key_is_refused(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, "10")
    await started(remote, fed_hs)
    token = (await fed_hs.register("bob"))["access_token"]
    invite = room.build("m.room.member", {"membership": "invite"}, state_key=BOB)
    forged = sign_event(
        {k: v for k, v in invite.pdu.items() if k != "signatures"},
        remote.server_name,
        generate_signing_key(remote.signing_key.version),
        room.version,
    )

    status, body = await remote.request(
        fed_hs,
        "PUT",
        f"{V2}/invite/{path_quote(room.room_id)}/{path_quote(invite.event_id)}",
        json_body={"room_version": "10", "event": forged, "invite_room_state": []},
    )
    # A failed signature check: 400 M_INVALID_PARAM, as the spec asks (v1.18).
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    assert await fed_hs.server.event_store.get_events([invite.event_id]) == {}
    assert room.room_id not in (await sync(fed_hs, token)).get("rooms", {}).get("invite", {})


async def test_an_invite_from_a_server_that_does_not_answer_is_rejected_here(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, "10")  # serves no make_leave
    await started(remote, fed_hs)
    token = (await fed_hs.register("bob"))["access_token"]
    status, body, _ = await room.invite(fed_hs, BOB)
    assert status == 200, body
    since = (await sync(fed_hs, token))["next_batch"]

    status, body = await fed_hs.request(
        "POST", f"{CLIENT}/rooms/{room.room_id}/leave", token=token, json={}
    )
    assert status == 200, body
    rooms = (await sync(fed_hs, token, since))["rooms"]
    assert room.room_id in rooms["leave"]
    assert room.room_id not in rooms.get("invite", {})
