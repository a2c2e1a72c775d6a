"""A guest access change from another server makes this server's guests leave."""

from __future__ import annotations

from typing import Any

from tests.federation.conftest import ScriptedRemote
from tests.federation.remote_room import RemoteRoom, serve_dag

V3 = "/_matrix/client/v3"


async def test_guests_leave_when_another_server_revokes_guest_access(
    server_factory: Any, remote_factory: Any
) -> None:
    hs = await server_factory(federation_insecure=True, allow_guest_access=True)
    remote: ScriptedRemote = await remote_factory(start=False)
    holder: dict[str, RemoteRoom] = {}
    serve_dag(remote, holder)
    await remote.start()
    await remote.expect_keys_of(hs)
    alice = await hs.register("alice")
    token = alice["access_token"]
    status, created = await hs.request(
        "POST", f"{V3}/createRoom", token=token, json={"preset": "public_chat"}
    )
    assert status == 200, created
    room_id = created["room_id"]
    bob = f"@bob:{remote.server_name}"
    for event_type, content in (
        ("m.room.power_levels", {"users": {bob: 50}}),
        ("m.room.guest_access", {"guest_access": "can_join"}),
    ):
        status, body = await hs.request(
            "PUT", f"{V3}/rooms/{room_id}/state/{event_type}", token=token, json=content
        )
        assert status == 200, body
    status, guest = await hs.request("POST", f"{V3}/register?kind=guest", json={})
    assert status == 200, guest
    status, body = await hs.request(
        "POST", f"{V3}/rooms/{room_id}/join", token=guest["access_token"], json={}
    )
    assert status == 200, body
    holder["room"] = room = await RemoteRoom.join(hs, remote, room_id)

    revoke = room.build("m.room.guest_access", {"guest_access": "forbidden"}, state_key="")
    status, body = await room.send([revoke])
    assert (status, body) == (200, {"pdus": {revoke.event_id: {}}})

    status, member = await hs.request(
        "GET",
        f"{V3}/rooms/{room_id}/state/m.room.member/{guest['user_id']}?format=event",
        token=token,
    )
    assert status == 200, member
    assert member["content"]["membership"] == "leave"
    assert member["sender"] == guest["user_id"]
