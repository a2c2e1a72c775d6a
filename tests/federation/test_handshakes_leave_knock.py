"""Leaves and knocks across servers, in both directions, and remote profiles."""

from __future__ import annotations

from typing import Any

from homeserver.events.hashing import compute_event_id
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote, path_quote
from tests.federation.hosted_room import CREATE, NAME, V1, V2, HostedRoom
from tests.federation.test_handshakes_join import CLIENT, started, sync
from tests.federation.test_joins import make_join, send_join, sign_join
from tests.federation.test_serving import make_room


async def member(hs: RunningServer, room_id: str, user_id: str, token: str) -> Any:
    status, body = await hs.request(
        "GET", f"{CLIENT}/rooms/{room_id}/state/m.room.member/{user_id}", token=token
    )
    assert status == 200, body
    return body["membership"]


async def handshake(
    remote: ScriptedRemote, hs: RunningServer, room_id: str, user_id: str, kind: str, version: str
) -> tuple[int, Any]:
    """make_<kind> then send_<kind> of `user_id` on our room, signed by `remote`."""
    ver = f"?ver={version}" if kind == "knock" else ""
    status, made = await remote.request(
        hs, "GET", f"{V1}/make_{kind}/{path_quote(room_id)}/{path_quote(user_id)}{ver}"
    )
    if status != 200:
        return status, made
    assert made["event"]["content"] == {"membership": kind}
    pdu = sign_join(remote, made["event"], version)
    event_id = compute_event_id(pdu, KNOWN_ROOM_VERSIONS[version])
    prefix = V1 if kind == "knock" else V2
    return await remote.request(
        hs,
        "PUT",
        f"{prefix}/send_{kind}/{path_quote(room_id)}/{path_quote(event_id)}",
        json_body=pdu,
    )


async def test_a_remote_member_leaves_our_room(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    token = (await fed_hs.register("alice"))["access_token"]
    room = await make_room(fed_hs, token, world_readable=False, room_version="10")
    bob = f"@bob:{remote.server_name}"
    status, made = await make_join(remote, fed_hs, room.room_id, bob, "10")
    assert status == 200, made
    status, joined, _ = await send_join(
        remote, fed_hs, room.room_id, sign_join(remote, made["event"], "10"), "10"
    )
    assert status == 200, joined
    assert await member(fed_hs, room.room_id, bob, token) == "join"

    status, body = await handshake(
        remote, fed_hs, room.room_id, "@eve:other.example", "leave", "10"
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await handshake(remote, fed_hs, room.room_id, bob, "leave", "10")
    assert (status, body) == (200, {})
    assert await member(fed_hs, room.room_id, bob, token) == "leave"
    # A second leave is refused by the rules.
    status, body = await handshake(remote, fed_hs, room.room_id, bob, "leave", "10")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_a_remote_user_knocks_on_our_room(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    token = (await fed_hs.register("alice"))["access_token"]
    knock_rule = {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}
    status, body = await fed_hs.request(
        "POST",
        f"{CLIENT}/createRoom",
        token=token,
        json={"room_version": "10", "name": "Knock here", "initial_state": [knock_rule]},
    )
    assert status == 200, body
    room_id = body["room_id"]
    bob = f"@bob:{remote.server_name}"

    status, body = await handshake(remote, fed_hs, room_id, bob, "knock", "6")
    assert (status, body["errcode"]) == (400, "M_INCOMPATIBLE_ROOM_VERSION")
    status, body = await handshake(remote, fed_hs, room_id, bob, "knock", "10")
    assert status == 200, body
    stripped = {(s["type"], s["state_key"]): s for s in body["knock_room_state"]}
    assert stripped[NAME]["content"] == {"name": "Knock here"}
    assert stripped[CREATE]["room_id"] == room_id
    assert await member(fed_hs, room_id, bob, token) == "knock"


async def test_our_user_knocks_on_a_remote_room(fed_hs: RunningServer, remote_factory: Any) -> None:
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, "10", join_rule="knock")
    room.serve()
    await started(remote, fed_hs)
    token = (await fed_hs.register("bob"))["access_token"]

    status, body = await fed_hs.request(
        "POST",
        f"{CLIENT}/knock/{room.room_id}?via={remote.server_name}",
        token=token,
        json={"reason": "let me in"},
    )
    assert (status, body) == (200, {"room_id": room.room_id})
    [(endpoint, knock)] = room.handshakes
    assert endpoint == "send_knock"
    assert knock.content["membership"] == "knock" and knock.content["reason"] == "let me in"
    entry = (await sync(fed_hs, token))["rooms"]["knock"][room.room_id]["knock_state"]["events"]
    assert [(e["type"], e["state_key"]) for e in entry] == [
        CREATE,
        NAME,
        ("m.room.member", "@bob:localhost"),
    ]
    assert entry[-1]["event_id"] == knock.event_id

    # Withdrawing the knock goes through the room's server too.
    status, body = await fed_hs.request(
        "POST", f"{CLIENT}/rooms/{room.room_id}/leave", token=token, json={}
    )
    assert status == 200, body
    assert [e for e, _ in room.handshakes] == ["send_knock", "send_leave"]
    rooms = (await sync(fed_hs, token)).get("rooms", {})
    assert room.room_id not in rooms.get("knock", {})


async def test_remote_profiles_are_asked_of_their_server(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    carol = f"@carol:{remote.server_name}"
    asked: list[dict[str, str]] = []

    async def profile(request: Any, _origin: str, _body: Any) -> Any:
        asked.append(dict(request.query))
        return {"displayname": "Carol", "avatar_url": "mxc://remote/carol"}

    remote.app.router.add_get(f"{V1}/query/profile", remote.handler(profile))
    await started(remote, fed_hs)

    status, body = await fed_hs.request("GET", f"{CLIENT}/profile/{carol}")
    assert (status, body) == (200, {"displayname": "Carol", "avatar_url": "mxc://remote/carol"})
    status, body = await fed_hs.request("GET", f"{CLIENT}/profile/{carol}/displayname")
    assert (status, body) == (200, {"displayname": "Carol"})
    assert asked == [{"user_id": carol}, {"user_id": carol, "field": "displayname"}]
