"""Our users join rooms that other servers host: make_join / send_join against a
ScriptedRemote resident server with a real, signed room DAG."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from homeserver.events.signing import sign_event
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote
from tests.federation.hosted_room import CREATE, HostedRoom

CLIENT = "/_matrix/client/v3"


async def sync(hs: RunningServer, token: str, since: str | None = None) -> dict[str, Any]:
    path = f"{CLIENT}/sync" + (f"?since={since}" if since else "")
    status, body = await hs.request("GET", path, token=token)
    assert status == 200, body
    return body


async def started(remote: ScriptedRemote, hs: RunningServer) -> None:
    await remote.start()
    await remote.expect_keys_of(hs)


@pytest.mark.parametrize("version", ["1", "10", "12"])
async def test_our_user_joins_a_remote_room(
    fed_hs: RunningServer, remote_factory: Any, version: str
) -> None:
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, version)
    room.serve()
    await started(remote, fed_hs)
    token = (await fed_hs.register("bob"))["access_token"]

    status, body = await fed_hs.request(
        "POST",
        f"{CLIENT}/join/{room.room_id}?server_name={remote.server_name}",
        token=token,
        json={"reason": "curious"},
    )
    assert status == 200, body
    assert body == {"room_id": room.room_id}
    [(endpoint, join)] = room.handshakes
    assert endpoint == "send_join"
    assert join.sender == "@bob:localhost"
    assert join.content["membership"] == "join" and join.content["reason"] == "curious"

    joined = (await sync(fed_hs, token))["rooms"]["join"][room.room_id]
    state = {(e["type"], e["state_key"]): e for e in joined["state"]["events"]}
    assert state[("m.room.name", "")]["content"] == {"name": "The remote room"}
    assert state[CREATE]["event_id"] == room.state[CREATE].event_id
    assert state[("m.room.member", room.alice)]["content"]["membership"] == "join"
    timeline = joined["timeline"]["events"]
    assert [e["event_id"] for e in timeline] == [join.event_id]

    status, members = await fed_hs.request(
        "GET", f"{CLIENT}/rooms/{room.room_id}/joined_members", token=token
    )
    assert status == 200, members
    assert set(members["joined"]) == {room.alice, "@bob:localhost"}
    # The stored join carries the resident server's signature next to ours.
    stored = (await fed_hs.server.event_store.get_events([join.event_id]))[join.event_id]
    assert set(stored.event.pdu["signatures"]) == {"localhost", remote.server_name}

    status, body = await fed_hs.request("GET", f"{CLIENT}/joined_rooms", token=token)
    assert body["joined_rooms"] == [room.room_id]


async def test_join_through_a_remote_alias(fed_hs: RunningServer, remote_factory: Any) -> None:
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, "11")
    room.serve()
    alias = f"#lobby:{remote.server_name}"

    async def directory(request: Any, _origin: str, _body: Any) -> Any:
        assert request.query["room_alias"] == alias
        return {"room_id": room.room_id, "servers": [remote.server_name]}

    remote.app.router.add_get("/_matrix/federation/v1/query/directory", remote.handler(directory))
    await started(remote, fed_hs)
    token = (await fed_hs.register("bob"))["access_token"]

    status, body = await fed_hs.request(
        "GET", f"{CLIENT}/directory/room/{alias.replace('#', '%23')}", token=token
    )
    assert status == 200, body
    assert body == {"room_id": room.room_id, "servers": [remote.server_name]}
    status, body = await fed_hs.request(
        "POST", f"{CLIENT}/join/{alias.replace('#', '%23')}", token=token, json={}
    )
    assert status == 200, body
    assert body["room_id"] == room.room_id
    assert room.room_id in (await sync(fed_hs, token))["rooms"]["join"]


def forge_name(room: HostedRoom, answer: dict[str, Any]) -> dict[str, Any]:
    """The m.room.name state event's content changed after signing."""
    for pdu in answer["state"]:
        if pdu["type"] == "m.room.name":
            pdu["content"] = {"name": "forged"}
            pdu["hashes"] = sign_event(pdu, "x", room.remote.signing_key, room.version)["hashes"]
    return answer


def unauthorised_name(room: HostedRoom, answer: dict[str, Any]) -> dict[str, Any]:
    """A name set by someone who is not in the room, correctly signed."""
    mallory = room.build(
        "m.room.name",
        {"name": "mallory's"},
        state_key="",
        sender=f"@mallory:{room.remote.server_name}",
    )
    answer["state"] = [p for p in answer["state"] if p["type"] != "m.room.name"]
    answer["state"].append(dict(mallory.pdu))
    return answer


@pytest.mark.parametrize("tamper", [forge_name, unauthorised_name])
async def test_a_bad_send_join_answer_is_refused_and_nothing_is_stored(
    fed_hs: RunningServer, remote_factory: Any, tamper: Any
) -> None:
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, "10")
    room.serve(lambda answer: tamper(room, answer))
    await started(remote, fed_hs)
    token = (await fed_hs.register("bob"))["access_token"]

    status, body = await fed_hs.request(
        "POST", f"{CLIENT}/join/{room.room_id}?via={remote.server_name}", token=token, json={}
    )
    assert (status, body["errcode"]) == (502, "M_UNKNOWN"), body
    assert len(room.handshakes) == 1
    stored = await fed_hs.server.event_store.get_events(e.event_id for e in room.events)
    assert stored == {}
    assert await fed_hs.server.event_store.room_version(room.room_id) is None
    assert room.room_id not in (await sync(fed_hs, token)).get("rooms", {}).get("join", {})


async def test_a_server_without_send_join_v2_is_joined_through_v1(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, "6")
    room.serve(v2=False)
    await started(remote, fed_hs)
    token = (await fed_hs.register("bob"))["access_token"]

    status, body = await fed_hs.request(
        "POST", f"{CLIENT}/join/{room.room_id}?via={remote.server_name}", token=token, json={}
    )
    assert status == 200, body
    sent = [(method, path.split("/")[3:5]) for method, path, _, _ in remote.received]
    assert sent == [("GET", ["v1", "make_join"]), ("PUT", ["v1", "send_join"])]
    assert room.room_id in (await sync(fed_hs, token))["rooms"]["join"]


async def test_two_of_our_users_join_a_remote_room_at_once(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, "10")
    room.serve()
    await started(remote, fed_hs)
    tokens = [(await fed_hs.register(name))["access_token"] for name in ("bob", "carol")]

    async def join(token: str) -> int:
        status, body = await fed_hs.request(
            "POST", f"{CLIENT}/join/{room.room_id}?via={remote.server_name}", token=token, json={}
        )
        assert status == 200, body
        return status

    await asyncio.gather(*(join(t) for t in tokens))
    # One handshake; the second joiner found this server in the room already.
    assert [e for e, _ in room.handshakes] == ["send_join"]
    status, members = await fed_hs.request(
        "GET", f"{CLIENT}/rooms/{room.room_id}/joined_members", token=tokens[0]
    )
    assert set(members["joined"]) == {room.alice, "@bob:localhost", "@carol:localhost"}
