"""A scripted remote server joins users to our rooms with make_join / send_join v2."""

from __future__ import annotations

from typing import Any

import pytest
from signedjson.key import generate_signing_key, get_verify_key

from homeserver.events.hashing import compute_event_id
from homeserver.events.redaction import redact
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.events.signing import sign_event, verify_json_signature
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote, path_quote
from tests.federation.test_serving import Room, check_pdu, make_room, our_key_lookup

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


async def make_join(
    remote: ScriptedRemote, hs: RunningServer, room_id: str, user_id: str, versions: str
) -> tuple[int, Any]:
    query = "&".join(f"ver={v}" for v in versions.split(","))
    return await remote.request(
        hs, "GET", f"{V1}/make_join/{path_quote(room_id)}/{path_quote(user_id)}?{query}"
    )


def sign_join(remote: ScriptedRemote, template: dict[str, Any], version: str) -> dict[str, Any]:
    return sign_event(
        template, remote.server_name, remote.signing_key, KNOWN_ROOM_VERSIONS[version]
    )


async def send_join(
    remote: ScriptedRemote, hs: RunningServer, room_id: str, pdu: dict[str, Any], version: str
) -> tuple[int, Any, str]:
    event_id = compute_event_id(pdu, KNOWN_ROOM_VERSIONS[version])
    status, body = await remote.request(
        hs,
        "PUT",
        f"{V2}/send_join/{path_quote(room_id)}/{path_quote(event_id)}",
        json_body=pdu,
    )
    return status, body, event_id


async def joined_members(hs: RunningServer, room: Room) -> set[str]:
    status, body = await hs.request(
        "GET", f"/_matrix/client/v3/rooms/{room.room_id}/joined_members", token=room.token
    )
    assert status == 200, body
    return set(body["joined"])


async def state_ids(hs: RunningServer, room: Room) -> set[str]:
    status, body = await hs.request(
        "GET", f"/_matrix/client/v3/rooms/{room.room_id}/state", token=room.token
    )
    assert status == 200
    return {e["event_id"] for e in body}


async def new_room(hs: RunningServer, version: str, **extra: Any) -> Room:
    token = (await hs.register("alice"))["access_token"]
    return await make_room(hs, token, world_readable=False, room_version=version, **extra)


@pytest.mark.parametrize("version", ["10", "12"])
async def test_a_remote_user_joins_a_public_room(
    fed_hs: RunningServer, remote: ScriptedRemote, version: str
) -> None:
    room = await new_room(fed_hs, version)
    bob = f"@bob:{remote.server_name}"
    before = await state_ids(fed_hs, room)

    status, made = await make_join(remote, fed_hs, room.room_id, bob, f"9,{version},11")
    assert status == 200, made
    assert made["room_version"] == version
    template = made["event"]
    assert (template["type"], template["state_key"], template["sender"]) == (
        "m.room.member",
        bob,
        bob,
    )
    assert template["content"] == {"membership": "join"}
    assert template["prev_events"] == [room.messages[-1]]
    assert template["room_id"] == room.room_id
    assert "signatures" not in template and "hashes" not in template

    pdu = sign_join(remote, template, version)
    status, joined, event_id = await send_join(remote, fed_hs, room.room_id, pdu, version)
    assert status == 200, joined
    assert joined["members_omitted"] is False
    lookup = await our_key_lookup(remote, fed_hs)
    room.version = version
    # The state before the join, and an auth chain that checks out.
    assert {check_pdu(p, room, lookup) for p in joined["state"]} == before
    chain = {check_pdu(p, room, lookup) for p in joined["auth_chain"]}
    assert set(template["auth_events"]) <= chain | before
    # The join comes back with our signature next to the remote's.
    assert set(joined["event"]["signatures"]) == {remote.server_name, "localhost"}
    remote_key = get_verify_key(remote.signing_key)

    def both(server: str, key_id: str) -> Any:
        return remote_key if server == remote.server_name else lookup(server, key_id)

    assert check_pdu(joined["event"], room, both, event_id) == event_id
    verify_json_signature(
        redact(joined["event"], KNOWN_ROOM_VERSIONS[version]), "localhost", lookup
    )

    assert await joined_members(fed_hs, room) == {"@alice:localhost", bob}
    assert event_id in await state_ids(fed_hs, room)

    # The room goes on from the join, and the remote may now read it.
    status, sent = await fed_hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room.room_id}/send/m.room.message/after",
        token=room.token,
        json={"msgtype": "m.text", "body": "welcome bob"},
    )
    assert status == 200, sent
    status, page = await remote.request(
        fed_hs,
        "GET",
        f"{V1}/backfill/{path_quote(room.room_id)}?v={path_quote(sent['event_id'])}&limit=2",
    )
    assert status == 200, page
    assert [check_pdu(p, room, both) for p in page["pdus"]] == [sent["event_id"], event_id]

    # Sending the same join again changes nothing.
    status, again, _ = await send_join(remote, fed_hs, room.room_id, pdu, version)
    assert status == 200
    assert await joined_members(fed_hs, room) == {"@alice:localhost", bob}


async def test_make_join_refusals(
    fed_hs: RunningServer, remote: ScriptedRemote, remote_factory: Any
) -> None:
    token = (await fed_hs.register("alice"))["access_token"]
    bob = f"@bob:{remote.server_name}"
    private = await make_room(fed_hs, token, world_readable=False, preset="private_chat")
    public = await make_room(fed_hs, token, world_readable=False)

    status, body = await make_join(remote, fed_hs, private.room_id, bob, "12")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await make_join(remote, fed_hs, public.room_id, "@bob:other.example", "12")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await make_join(remote, fed_hs, public.room_id, bob, "1,2")
    assert (status, body["errcode"], body["room_version"]) == (
        400,
        "M_INCOMPATIBLE_ROOM_VERSION",
        "12",
    )
    status, body = await make_join(remote, fed_hs, "!nowhere:localhost", bob, "12")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    status, _ = await fed_hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{public.room_id}/state/m.room.server_acl/",
        token=token,
        json={"allow": ["*"], "deny": ["127.0.0.1"]},
    )
    assert status == 200
    status, body = await make_join(remote, fed_hs, public.room_id, bob, "12")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_send_join_refusals_change_nothing(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    room = await new_room(fed_hs, "12")
    bob = f"@bob:{remote.server_name}"
    status, made = await make_join(remote, fed_hs, room.room_id, bob, "12")
    assert status == 200
    template = made["event"]

    impostor = generate_signing_key(remote.signing_key.version)
    forged = sign_event(template, remote.server_name, impostor, KNOWN_ROOM_VERSIONS["12"])
    status, body, _ = await send_join(remote, fed_hs, room.room_id, forged, "12")
    # The validation the spec lists (v1.18) answers 400 M_INVALID_PARAM.
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")

    pdu = sign_join(remote, template, "12")
    tampered = {**pdu, "content": {**pdu["content"], "displayname": "Mallory"}}
    status, body, _ = await send_join(remote, fed_hs, room.room_id, tampered, "12")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")

    status, body = await remote.request(
        fed_hs,
        "PUT",
        f"{V2}/send_join/{path_quote(room.room_id)}/{path_quote(room.messages[0])}",
        json_body=pdu,
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")

    leave = sign_join(remote, {**template, "content": {"membership": "leave"}}, "12")
    status, body, _ = await send_join(remote, fed_hs, room.room_id, leave, "12")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")

    carol = "@carol:other.example"
    foreign = sign_join(remote, {**template, "sender": carol, "state_key": carol}, "12")
    status, body, _ = await send_join(remote, fed_hs, room.room_id, foreign, "12")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")

    # The room turns invite-only between make_join and send_join: the join is
    # still allowed by its auth events and the state before it, not by the
    # room's current state.
    status, _ = await fed_hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room.room_id}/state/m.room.join_rules/",
        token=room.token,
        json={"join_rule": "invite"},
    )
    assert status == 200
    status, body, _ = await send_join(remote, fed_hs, room.room_id, pdu, "12")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    assert await joined_members(fed_hs, room) == {"@alice:localhost"}
