"""The federation hierarchy (`GET /_matrix/federation/v1/hierarchy/{roomId}`):
served to other servers (only what they may see), and asked of them by the
client `/hierarchy` and the room summary for rooms this server is not in."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from tests.federation.conftest import ScriptedRemote

V1 = "/_matrix/federation/v1"
V3 = "/_matrix/client/v3"
CV1 = "/_matrix/client/v1"


async def create(hs: Any, token: str, **body: Any) -> str:
    status, created = await hs.request("POST", f"{V3}/createRoom", token=token, json=body)
    assert status == 200, created
    return created["room_id"]


async def add_child(hs: Any, token: str, space: str, child: str, via: str, **content: Any) -> None:
    status, body = await hs.request(
        "PUT",
        f"{V3}/rooms/{space}/state/m.space.child/{quote(child, safe='')}",
        token=token,
        json={"via": [via], **content},
    )
    assert status == 200, body


async def test_served_hierarchy_shows_only_what_the_server_may_see(
    fed_hs: Any, remote: ScriptedRemote
) -> None:
    hs = fed_hs
    alice = (await hs.register("alice"))["access_token"]
    space = await create(
        hs, alice, preset="public_chat", name="Space", creation_content={"type": "m.space"}
    )
    public = await create(hs, alice, preset="public_chat", name="Public")
    private = await create(hs, alice, preset="private_chat", name="Private")
    for child in (public, private):
        await add_child(hs, alice, space, child, "localhost")
    await add_child(hs, alice, space, "!elsewhere:example.org", "example.org", suggested=True)

    status, body = await remote.request(hs, "GET", f"{V1}/hierarchy/{quote(space)}")
    assert status == 200, body
    room = body["room"]
    assert room["room_id"] == space and room["room_type"] == "m.space"
    assert room["name"] == "Space" and room["num_joined_members"] == 1
    children = {c["state_key"] for c in room["children_state"]}
    assert children == {public, private, "!elsewhere:example.org"}
    assert all("origin_server_ts" in c for c in room["children_state"])
    # The children this server is in: the public one summarised, the private
    # one inaccessible; the unknown one left out.
    assert [c["room_id"] for c in body["children"]] == [public]
    assert "children_state" not in body["children"][0]
    assert body["inaccessible_children"] == [private]

    status, body = await remote.request(
        hs, "GET", f"{V1}/hierarchy/{quote(space)}?suggested_only=true"
    )
    assert status == 200, body
    assert [c["state_key"] for c in body["room"]["children_state"]] == ["!elsewhere:example.org"]
    assert body["children"] == [] and body["inaccessible_children"] == []

    # A private room is not shown to a server with nobody in it; unknown rooms are 404.
    for room_id in (private, "!unknown:localhost"):
        status, body = await remote.request(hs, "GET", f"{V1}/hierarchy/{quote(room_id)}")
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await remote.request(
        hs, "GET", f"{V1}/hierarchy/{quote(space)}?suggested_only=maybe"
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


def _remote_space(remote: ScriptedRemote) -> dict[str, Any]:
    """What a remote server says of its public space with one public room and one
    restricted room."""
    space, room, restricted = (
        f"!space:{remote.server_name}",
        f"!room:{remote.server_name}",
        f"!restricted:{remote.server_name}",
    )

    def summary(room_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "room_id": room_id,
            "num_joined_members": 3,
            "world_readable": False,
            "guest_can_join": False,
            "join_rule": "public",
            "room_version": "10",
            **extra,
        }

    def child(room_id: str, order: str) -> dict[str, Any]:
        return {
            "type": "m.space.child",
            "state_key": room_id,
            "content": {"via": [remote.server_name], "order": order},
            "sender": f"@owner:{remote.server_name}",
            "origin_server_ts": 1,
        }

    return {
        "room": {
            **summary(space, name="Remote space", room_type="m.space"),
            "children_state": [child(restricted, "b"), child(room, "a")],
        },
        "children": [
            summary(room, name="Remote room"),
            summary(
                restricted,
                join_rule="restricted",
                allowed_room_ids=[f"!members:{remote.server_name}"],
            ),
        ],
        "inaccessible_children": [],
    }


async def test_client_hierarchy_and_summary_ask_the_remote_server(
    fed_hs: Any, remote_factory: Any
) -> None:
    hs = fed_hs
    remote: ScriptedRemote = await remote_factory(start=False)
    answer = _remote_space(remote)
    space = answer["room"]["room_id"]

    async def hierarchy(request: web.Request, origin: str, _body: Any) -> Any:
        if request.match_info["roomId"] != space:
            raise web.HTTPNotFound(
                text='{"errcode":"M_NOT_FOUND","error":"no"}', content_type="application/json"
            )
        return answer

    remote.app.router.add_get(V1 + "/hierarchy/{roomId}", remote.handler(hierarchy))
    await remote.start()
    await remote.expect_keys_of(hs)
    alice = (await hs.register("alice"))["access_token"]
    local = await create(
        hs, alice, preset="public_chat", name="Ours", creation_content={"type": "m.space"}
    )
    await add_child(hs, alice, local, space, remote.server_name)

    status, body = await hs.request("GET", f"{CV1}/rooms/{local}/hierarchy", token=alice)
    assert status == 200, body
    rooms = body["rooms"]
    # Depth first: ours, the remote space, its children in their order;
    # the restricted room is left out (alice is in none of its allowed rooms).
    assert [r["room_id"] for r in rooms] == [local, space, f"!room:{remote.server_name}"]
    assert rooms[1]["name"] == "Remote space"
    assert [c["state_key"] for c in rooms[1]["children_state"]] == [
        f"!room:{remote.server_name}",
        f"!restricted:{remote.server_name}",
    ]
    assert rooms[2]["name"] == "Remote room" and rooms[2]["children_state"] == []
    asked = [path for _, path, _, _ in remote.received]
    assert asked == [f"{V1}/hierarchy/{space}"]

    # The room summary of a room we are not in, through the via server.
    status, summary = await hs.request(
        "GET",
        f"{CV1}/room_summary/{quote(space)}?via={remote.server_name}",
        token=alice,
    )
    assert status == 200, summary
    assert summary["name"] == "Remote space" and summary["membership"] == "leave"
    assert "children_state" not in summary
    # Unauthenticated: a public room may be shown.
    status, summary = await hs.request(
        "GET", f"{CV1}/room_summary/{quote(space)}?via={remote.server_name}"
    )
    assert status == 200 and "membership" not in summary
    # A room the remote does not know.
    status, body = await hs.request(
        "GET",
        f"{CV1}/room_summary/{quote('!nope:' + remote.server_name)}?via={remote.server_name}",
        token=alice,
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
