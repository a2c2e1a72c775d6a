"""Room reads served to other servers: signed PDUs, state, auth chains, history walks,
and the access rules (joined server or world_readable; server ACLs)."""

from __future__ import annotations

from typing import Any

import attrs
from signedjson.key import decode_verify_key_bytes
from unpaddedbase64 import decode_base64

from homeserver.events.hashing import check_content_hash, compute_event_id
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.events.signing import verify_event_signatures
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote, path_quote

V1 = "/_matrix/federation/v1"


@attrs.define
class Room:
    room_id: str
    version: str
    token: str
    messages: list[str]


async def make_room(hs: RunningServer, token: str, *, world_readable: bool, **extra: Any) -> Room:
    initial_state = []
    if world_readable:
        initial_state.append(
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            }
        )
    status, body = await hs.request(
        "POST",
        "/_matrix/client/v3/createRoom",
        token=token,
        json={"preset": "public_chat", "initial_state": initial_state, **extra},
    )
    assert status == 200, body
    room_id = body["room_id"]
    messages = []
    for i in range(5):
        status, sent = await hs.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t{i}{room_id}",
            token=token,
            json={"msgtype": "m.text", "body": f"message {i}"},
        )
        assert status == 200, sent
        messages.append(sent["event_id"])
    status, create = await hs.request(
        "GET", f"/_matrix/client/v3/rooms/{room_id}/state/m.room.create/", token=token
    )
    return Room(room_id, create.get("room_version", "1"), token, messages)


async def alice(hs: RunningServer) -> str:
    return (await hs.register("alice"))["access_token"]


async def our_key_lookup(remote: ScriptedRemote, hs: RunningServer) -> Any:
    keys = await remote.our_keys(hs)
    verify_keys = {
        kid: decode_verify_key_bytes(kid, decode_base64(e["key"]))
        for kid, e in keys["verify_keys"].items()
    }
    return lambda server, kid: verify_keys.get(kid) if server == "localhost" else None


def check_pdu(pdu: dict[str, Any], room: Room, lookup: Any, event_id: str | None = None) -> str:
    """Check a served PDU as a receiving server would; return its event id."""
    version = KNOWN_ROOM_VERSIONS[room.version]
    verify_event_signatures(pdu, version, lookup)
    computed = compute_event_id(pdu, version)
    if event_id is not None:
        assert computed == event_id
    return computed


async def current_state_ids(hs: RunningServer, room: Room) -> set[str]:
    status, state = await hs.request(
        "GET", f"/_matrix/client/v3/rooms/{room.room_id}/state", token=room.token
    )
    assert status == 200
    return {e["event_id"] for e in state}


async def test_an_event_is_served_as_its_signed_pdu(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    room = await make_room(fed_hs, await alice(fed_hs), world_readable=True)
    lookup = await our_key_lookup(remote, fed_hs)
    status, body = await remote.request(fed_hs, "GET", f"{V1}/event/{room.messages[2]}")
    assert status == 200, body
    assert body["origin"] == "localhost" and isinstance(body["origin_server_ts"], int)
    [pdu] = body["pdus"]
    check_pdu(pdu, room, lookup, room.messages[2])
    assert check_content_hash(pdu)
    assert pdu["content"] == {"msgtype": "m.text", "body": "message 2"}
    assert "event_id" not in pdu and "unsigned" not in pdu

    status, body = await remote.request(fed_hs, "GET", f"{V1}/event/$nope")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_a_redacted_event_is_served_redacted_and_still_verifies(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    room = await make_room(fed_hs, await alice(fed_hs), world_readable=True)
    status, _ = await fed_hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room.room_id}/redact/{room.messages[0]}/r1",
        token=room.token,
        json={},
    )
    assert status == 200
    lookup = await our_key_lookup(remote, fed_hs)
    status, body = await remote.request(fed_hs, "GET", f"{V1}/event/{room.messages[0]}")
    assert status == 200
    [pdu] = body["pdus"]
    assert pdu["content"] == {}
    check_pdu(pdu, room, lookup, room.messages[0])
    assert not check_content_hash(pdu)


async def test_state_and_auth_chain_at_an_event(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    room = await make_room(fed_hs, await alice(fed_hs), world_readable=True)
    lookup = await our_key_lookup(remote, fed_hs)
    state_ids = await current_state_ids(fed_hs, room)
    status, ids = await remote.request(
        fed_hs, "GET", f"{V1}/state_ids/{path_quote(room.room_id)}?event_id={room.messages[4]}"
    )
    assert status == 200, ids
    assert set(ids["pdu_ids"]) == state_ids
    assert ids["auth_chain_ids"] and set(ids["auth_chain_ids"]) <= state_ids

    status, full = await remote.request(
        fed_hs, "GET", f"{V1}/state/{path_quote(room.room_id)}?event_id={room.messages[4]}"
    )
    assert status == 200
    assert {check_pdu(p, room, lookup) for p in full["pdus"]} == state_ids
    assert {check_pdu(p, room, lookup) for p in full["auth_chain"]} == set(ids["auth_chain_ids"])
    create = [p for p in full["pdus"] if p["type"] == "m.room.create"]
    assert len(create) == 1

    # The state at a state event is the state before it.
    create_id = path_quote(check_pdu(create[0], room, lookup))
    status, before_join = await remote.request(
        fed_hs, "GET", f"{V1}/state_ids/{path_quote(room.room_id)}?event_id={create_id}"
    )
    assert status == 200 and before_join["pdu_ids"] == []

    status, chain = await remote.request(
        fed_hs, "GET", f"{V1}/event_auth/{path_quote(room.room_id)}/{room.messages[1]}"
    )
    assert status == 200
    chain_types = {p["type"] for p in chain["auth_chain"]}
    assert {"m.room.create", "m.room.member", "m.room.power_levels"} <= chain_types


async def test_backfill_and_missing_events_walk_the_dag(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    room = await make_room(fed_hs, await alice(fed_hs), world_readable=True)
    lookup = await our_key_lookup(remote, fed_hs)
    room_path = path_quote(room.room_id)
    status, body = await remote.request(
        fed_hs, "GET", f"{V1}/backfill/{room_path}?v={room.messages[4]}&limit=3"
    )
    assert status == 200, body
    assert [check_pdu(p, room, lookup) for p in body["pdus"]] == room.messages[4:1:-1]

    status, body = await remote.request(
        fed_hs,
        "POST",
        f"{V1}/get_missing_events/{room_path}",
        json_body={
            "earliest_events": [room.messages[0]],
            "latest_events": [room.messages[4]],
            "limit": 10,
        },
    )
    assert status == 200, body
    assert [check_pdu(p, room, lookup) for p in body["events"]] == room.messages[1:4]

    status, body = await remote.request(
        fed_hs,
        "POST",
        f"{V1}/get_missing_events/{room_path}",
        json_body={"earliest_events": [], "latest_events": [room.messages[4]], "limit": 2},
    )
    assert [check_pdu(p, room, lookup) for p in body["events"]] == room.messages[2:4]

    status, body = await remote.request(
        fed_hs, "POST", f"{V1}/get_missing_events/{room_path}", json_body={"limit": "x"}
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_servers_without_a_member_cannot_read_a_private_room(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    room = await make_room(fed_hs, await alice(fed_hs), world_readable=False)
    room_path = path_quote(room.room_id)
    for method, path, body in [
        ("GET", f"{V1}/event/{room.messages[0]}", None),
        ("GET", f"{V1}/state/{room_path}?event_id={room.messages[0]}", None),
        ("GET", f"{V1}/state_ids/{room_path}?event_id={room.messages[0]}", None),
        ("GET", f"{V1}/event_auth/{room_path}/{room.messages[0]}", None),
        ("GET", f"{V1}/backfill/{room_path}?v={room.messages[0]}&limit=5", None),
        ("POST", f"{V1}/get_missing_events/{room_path}", {"latest_events": [room.messages[1]]}),
    ]:
        status, answer = await remote.request(fed_hs, method, path, json_body=body)
        assert (status, answer["errcode"]) == (403, "M_FORBIDDEN"), path
    status, answer = await remote.request(
        fed_hs, "GET", f"{V1}/state_ids/{path_quote('!unknown:localhost')}?event_id=$x"
    )
    assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")


async def test_a_server_denied_by_the_acl_cannot_read_a_world_readable_room(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    room = await make_room(fed_hs, await alice(fed_hs), world_readable=True)
    status, _ = await remote.request(fed_hs, "GET", f"{V1}/event/{room.messages[0]}")
    assert status == 200
    status, body = await fed_hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room.room_id}/state/m.room.server_acl/",
        token=room.token,
        json={"allow": ["*"], "deny": ["127.0.0.*"], "allow_ip_literals": True},
    )
    assert status == 200, body
    for path in (
        f"{V1}/event/{room.messages[0]}",
        f"{V1}/backfill/{path_quote(room.room_id)}?v={room.messages[0]}&limit=5",
    ):
        status, body = await remote.request(fed_hs, "GET", path)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_profile_alias_and_public_room_queries(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    token = await alice(fed_hs)
    await fed_hs.request(
        "PUT",
        "/_matrix/client/v3/profile/@alice:localhost/displayname",
        token=token,
        json={"displayname": "Alice"},
    )
    room = await make_room(
        fed_hs,
        token,
        world_readable=False,
        visibility="public",
        room_alias_name="lobby",
        name="The lobby",
    )
    status, body = await remote.request(
        fed_hs, "GET", f"{V1}/query/profile?user_id=%40alice%3Alocalhost"
    )
    assert (status, body) == (200, {"displayname": "Alice"})
    status, body = await remote.request(
        fed_hs, "GET", f"{V1}/query/profile?user_id=%40alice%3Alocalhost&field=avatar_url"
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await remote.request(
        fed_hs, "GET", f"{V1}/query/profile?user_id=%40nobody%3Alocalhost"
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    status, body = await remote.request(
        fed_hs, "GET", f"{V1}/query/directory?room_alias=%23lobby%3Alocalhost"
    )
    assert (status, body) == (200, {"room_id": room.room_id, "servers": ["localhost"]})
    status, body = await remote.request(
        fed_hs, "GET", f"{V1}/query/directory?room_alias=%23nothing%3Alocalhost"
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    status, body = await remote.request(fed_hs, "GET", f"{V1}/publicRooms?limit=10")
    assert status == 200, body
    assert [r["room_id"] for r in body["chunk"]] == [room.room_id]
    assert body["chunk"][0]["name"] == "The lobby"
    status, body = await remote.request(
        fed_hs,
        "POST",
        f"{V1}/publicRooms",
        json_body={"limit": 5, "filter": {"generic_search_term": "lobby"}},
    )
    assert status == 200 and [r["room_id"] for r in body["chunk"]] == [room.room_id]
    status, body = await remote.request(
        fed_hs,
        "POST",
        f"{V1}/publicRooms",
        json_body={"filter": {"generic_search_term": "kitchen"}},
    )
    assert status == 200 and body["chunk"] == []
