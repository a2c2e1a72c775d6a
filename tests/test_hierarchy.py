"""The space hierarchy (GET /_matrix/client/v1/rooms/{roomId}/hierarchy)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import nio
import pytest


async def create(client: nio.AsyncClient, **kwargs: Any) -> str:
    resp = await client.room_create(**kwargs)
    assert isinstance(resp, nio.RoomCreateResponse), resp
    return resp.room_id


async def add_child(client: nio.AsyncClient, space: str, child: str, **content: Any) -> None:
    resp = await client.room_put_state(
        space, "m.space.child", {"via": ["localhost"], **content}, state_key=child
    )
    assert isinstance(resp, nio.RoomPutStateResponse), resp


async def hierarchy(hs: Any, client: nio.AsyncClient, room_id: str, **query: Any) -> Any:
    qs = urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()})
    return await hs.request(
        "GET",
        f"/_matrix/client/v1/rooms/{room_id}/hierarchy?{qs}",
        token=client.access_token,
    )


@pytest.fixture
async def tree(login: Any) -> dict[str, Any]:
    """Alice's public space: rooms A and B, a nested space with room C, a private room D.

    A's child event orders it first, D is invite-only, B is suggested.
    """
    alice = await login("alice")
    public = {"visibility": nio.RoomVisibility.public}
    space = await create(alice, name="Space", topic="Top", space=True, **public)
    a = await create(alice, name="A", **public)
    b = await create(alice, name="B", **public)
    nested = await create(alice, name="Nested", space=True, **public)
    c = await create(alice, name="C", **public)
    d = await create(alice, name="D")
    await add_child(alice, space, b, suggested=True)
    await add_child(alice, space, a, order="a")
    await add_child(alice, space, nested)
    await add_child(alice, space, d)
    await add_child(alice, nested, c)
    # A child event without via does not count.
    await add_child(alice, nested, a, via=[])
    return {"alice": alice, "space": space, "a": a, "b": b, "nested": nested, "c": c, "d": d}


async def test_hierarchy_walks_depth_first_and_hides_private_rooms(hs, login, tree):
    bob = await login("bob")
    resp = await bob.space_get_hierarchy(tree["space"])
    assert isinstance(resp, nio.SpaceGetHierarchyResponse), resp
    ids = [r["room_id"] for r in resp.rooms]
    # Bob is in none of them: the invite-only room D is left out.
    assert ids == [tree["space"], tree["a"], tree["b"], tree["nested"], tree["c"]]
    assert resp.next_batch is None

    top = resp.rooms[0]
    assert top["name"] == "Space" and top["topic"] == "Top"
    assert top["room_type"] == "m.space"
    assert top["num_joined_members"] == 1
    assert top["join_rule"] == "public"
    assert top["world_readable"] is False and top["guest_can_join"] is False
    assert top["room_version"]
    children = top["children_state"]
    assert [c["state_key"] for c in children] == [tree["a"], tree["b"], tree["nested"], tree["d"]]
    first = children[0]
    assert first["type"] == "m.space.child"
    assert first["sender"] == "@alice:localhost"
    assert first["content"] == {"via": ["localhost"], "order": "a"}
    assert isinstance(first["origin_server_ts"], int)
    nested = resp.rooms[3]
    assert [c["state_key"] for c in nested["children_state"]] == [tree["c"]]
    assert resp.rooms[1]["children_state"] == []  # not a space

    # Alice, who is in D, sees it.
    status, body = await hierarchy(hs, tree["alice"], tree["space"])
    assert status == 200
    assert tree["d"] in [r["room_id"] for r in body["rooms"]]


async def test_hierarchy_depth_suggested_and_pagination(hs, login, tree):
    bob = await login("bob")
    status, body = await hierarchy(hs, bob, tree["space"], max_depth=1)
    assert status == 200
    assert [r["room_id"] for r in body["rooms"]] == [
        tree["space"],
        tree["a"],
        tree["b"],
        tree["nested"],
    ]
    assert body["rooms"][3]["children_state"] == []

    status, body = await hierarchy(hs, bob, tree["space"], suggested_only=True)
    assert [r["room_id"] for r in body["rooms"]] == [tree["space"], tree["b"]]
    assert [c["state_key"] for c in body["rooms"][0]["children_state"]] == [tree["b"]]

    seen = []
    status, page = await hierarchy(hs, bob, tree["space"], limit=2)
    seen += [r["room_id"] for r in page["rooms"]]
    assert len(page["rooms"]) == 2 and page["next_batch"]
    token = page["next_batch"]
    status, body = await hierarchy(hs, bob, tree["space"], limit=2, max_depth=1, **{"from": token})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    while "next_batch" in page:
        status, page = await hierarchy(
            hs, bob, tree["space"], limit=2, **{"from": page["next_batch"]}
        )
        assert status == 200
        seen += [r["room_id"] for r in page["rooms"]]
    assert seen == [tree["space"], tree["a"], tree["b"], tree["nested"], tree["c"]]


async def test_hierarchy_refusals(hs, login, tree):
    bob = await login("bob")
    status, body = await hierarchy(hs, bob, tree["d"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await hierarchy(hs, bob, "!unknown:localhost")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    for query in ({"limit": 0}, {"max_depth": -1}, {"limit": "x"}, {"from": "not-a-token"}):
        status, body = await hierarchy(hs, bob, tree["space"], **query)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), query
    status, body = await hs.request("GET", f"/_matrix/client/v1/rooms/{tree['space']}/hierarchy")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
