"""Room aliases and the published room directory, over matrix-nio and raw HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import nio

V3 = "/_matrix/client/v3"


async def create(client: nio.AsyncClient, **kwargs: Any) -> str:
    resp = await client.room_create(**kwargs)
    assert isinstance(resp, nio.RoomCreateResponse), resp
    return resp.room_id


def alias_path(alias: str) -> str:
    return f"{V3}/directory/room/{quote(alias)}"


async def join(client: nio.AsyncClient, room_id: str) -> None:
    assert isinstance(await client.join(room_id), nio.JoinResponse)


async def test_alias_create_resolve_and_delete(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    room_id = await create(alice, alias="lobby", name="Lobby", visibility=nio.RoomVisibility.public)

    resolved = await bob.room_resolve_alias("#lobby:localhost")
    assert isinstance(resolved, nio.RoomResolveAliasResponse), resolved
    assert (resolved.room_id, resolved.servers) == (room_id, ["localhost"])

    assert isinstance(
        await alice.room_put_alias("#extra:localhost", room_id), nio.RoomPutAliasResponse
    )
    # An alias in use, on another server, or malformed: refused, nothing changes.
    status, body = await hs.request(
        "PUT", alias_path("#extra:localhost"), token=alice.access_token, json={"room_id": room_id}
    )
    assert (status, body["errcode"]) == (409, "M_UNKNOWN")
    for bad in ("#remote:elsewhere.example", "#:localhost", "lobby"):
        status, body = await hs.request(
            "PUT", alias_path(bad), token=alice.access_token, json={"room_id": room_id}
        )
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), bad
    status, body = await hs.request(
        "PUT", alias_path("#nowhere:localhost"), token=alice.access_token, json={}
    )
    assert status == 400 and body["errcode"] in ("M_MISSING_PARAM", "M_BAD_JSON")

    # Bob may not alias a room he is not in; once he joined he may.
    # (nio reads any answer to a PUT or DELETE of an alias as success: raw HTTP for refusals.)
    status, body = await hs.request(
        "PUT", alias_path("#bobs:localhost"), token=bob.access_token, json={"room_id": room_id}
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    await join(bob, room_id)
    assert isinstance(
        await bob.room_put_alias("#bobs:localhost", room_id), nio.RoomPutAliasResponse
    )

    status, body = await hs.request("GET", f"{V3}/rooms/{room_id}/aliases", token=bob.access_token)
    assert (status, body) == (
        200,
        {"aliases": ["#bobs:localhost", "#extra:localhost", "#lobby:localhost"]},
    )

    # Bob (power 0) may not delete Alice's alias, but may delete his own.
    status, body = await hs.request(
        "DELETE", alias_path("#extra:localhost"), token=bob.access_token
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert (await bob.room_resolve_alias("#extra:localhost")).room_id == room_id
    assert isinstance(await bob.room_delete_alias("#bobs:localhost"), nio.RoomDeleteAliasResponse)
    gone = await bob.room_resolve_alias("#bobs:localhost")
    assert isinstance(gone, nio.RoomResolveAliasError) and gone.status_code == "M_NOT_FOUND"
    status, body = await hs.request("DELETE", alias_path("#bobs:localhost"), token=bob.access_token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    # Alice, the room admin, deletes the canonical alias: it leaves the state event too.
    assert isinstance(
        await alice.room_delete_alias("#lobby:localhost"), nio.RoomDeleteAliasResponse
    )
    status, body = await hs.request("GET", alias_path("#lobby:localhost"))
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    state = await alice.room_get_state_event(room_id, "m.room.canonical_alias")
    assert "alias" not in state.content
    status, body = await hs.request(
        "GET", f"{V3}/rooms/{room_id}/aliases", token=alice.access_token
    )
    assert body == {"aliases": ["#extra:localhost"]}


async def test_room_aliases_for_members_or_world_readable_rooms(hs, login):
    alice = await login("alice")
    carol = await login("carol")
    private = await create(alice, alias="secret")
    readable = await create(
        alice,
        alias="open-book",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )
    status, body = await hs.request(
        "GET", f"{V3}/rooms/{private}/aliases", token=carol.access_token
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await hs.request(
        "GET", f"{V3}/rooms/{readable}/aliases", token=carol.access_token
    )
    assert (status, body) == (200, {"aliases": ["#open-book:localhost"]})


async def _public_rooms(hs: Any, token: str | None = None, **query: Any) -> dict[str, Any]:
    query_string = "&".join(f"{k}={quote(str(v))}" for k, v in query.items())
    status, body = await hs.request("GET", f"{V3}/publicRooms?{query_string}", token=token)
    assert status == 200, body
    return body


async def test_public_rooms_order_pagination_and_search(hs, login):
    alice = await login("alice")
    others = [await login(f"user{i}") for i in range(3)]
    rooms = []
    for i in range(5):
        rooms.append(
            await create(
                alice,
                name=f"Room {i}",
                topic="All about cheese" if i == 1 else f"Topic {i}",
                alias="fromage" if i == 3 else None,
                visibility=nio.RoomVisibility.public,
            )
        )
    # Room 4 has 4 members, room 2 has 3, room 0 has 2; rooms 1 and 3 only Alice.
    for client in others:
        await join(client, rooms[4])
    for client in others[:2]:
        await join(client, rooms[2])
    await join(others[0], rooms[0])
    private = await create(alice, name="Hidden cheese")
    tied = sorted([rooms[1], rooms[3]])
    expected = [rooms[4], rooms[2], rooms[0], *tied]

    first = await _public_rooms(hs, limit=2)
    assert [r["room_id"] for r in first["chunk"]] == expected[:2]
    assert first["total_room_count_estimate"] == 5
    assert "prev_batch" not in first
    second = await _public_rooms(hs, limit=2, since=first["next_batch"])
    assert [r["room_id"] for r in second["chunk"]] == expected[2:4]
    third = await _public_rooms(hs, limit=2, since=second["next_batch"])
    assert [r["room_id"] for r in third["chunk"]] == expected[4:]
    assert "next_batch" not in third
    back = await _public_rooms(hs, limit=2, since=second["prev_batch"])
    assert [r["room_id"] for r in back["chunk"]] == expected[:2]
    assert "prev_batch" not in back and back["next_batch"]
    everything = await _public_rooms(hs, token=alice.access_token)
    assert private not in [r["room_id"] for r in everything["chunk"]]

    top = first["chunk"][0]
    assert top == {
        "room_id": rooms[4],
        "name": "Room 4",
        "topic": "Topic 4",
        "num_joined_members": 4,
        "world_readable": False,
        "guest_can_join": False,
        "join_rule": "public",
    }

    # The search term matches names, topics and aliases, case-insensitively.
    status, body = await hs.request(
        "POST",
        f"{V3}/publicRooms",
        token=alice.access_token,
        json={"filter": {"generic_search_term": "CHEESE"}},
    )
    assert status == 200
    assert [r["room_id"] for r in body["chunk"]] == [rooms[1]]
    assert body["total_room_count_estimate"] == 1
    status, body = await hs.request(
        "POST",
        f"{V3}/publicRooms",
        token=alice.access_token,
        json={"filter": {"generic_search_term": "fromage"}, "limit": 10},
    )
    assert [r["room_id"] for r in body["chunk"]] == [rooms[3]]
    assert body["chunk"][0]["canonical_alias"] == "#fromage:localhost"
    # Wildcards in the term are matched literally.
    status, body = await hs.request(
        "POST",
        f"{V3}/publicRooms",
        token=alice.access_token,
        json={"filter": {"generic_search_term": "%"}},
    )
    assert body["chunk"] == []


async def test_public_rooms_room_types_filter(hs, login):
    alice = await login("alice")
    room = await create(alice, name="Plain", visibility=nio.RoomVisibility.public)
    space = await create(alice, name="Space", space=True, visibility=nio.RoomVisibility.public)

    async def ids(room_types: list[str | None]) -> list[str]:
        status, body = await hs.request(
            "POST",
            f"{V3}/publicRooms",
            token=alice.access_token,
            json={"filter": {"room_types": room_types}},
        )
        assert status == 200, body
        return sorted(r["room_id"] for r in body["chunk"])

    assert await ids(["m.space"]) == [space]
    assert await ids([None]) == [room]
    assert await ids([None, "m.space"]) == sorted([room, space])
    body = await _public_rooms(hs)
    assert {r["room_id"]: r.get("room_type") for r in body["chunk"]} == {
        room: None,
        space: "m.space",
    }


async def test_public_rooms_bad_input(hs, login):
    alice = await login("alice")
    for query in ("limit=abc", "limit=0", "since=garbage", "server=elsewhere.example"):
        status, body = await hs.request("GET", f"{V3}/publicRooms?{query}")
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), query
    for bad in ({"limit": "2"}, {"filter": []}, {"filter": {"room_types": "m.space"}}):
        status, body = await hs.request(
            "POST", f"{V3}/publicRooms", token=alice.access_token, json=bad
        )
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), bad
    status, body = await hs.request("POST", f"{V3}/publicRooms", json={})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_directory_visibility_toggle(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    room_id = await create(alice, name="Toggle", preset=nio.RoomPreset.public_chat)
    await join(bob, room_id)

    visibility = await bob.room_get_visibility(room_id)
    assert isinstance(visibility, nio.RoomGetVisibilityResponse)
    assert visibility.visibility == "private"
    path = f"{V3}/directory/list/room/{room_id}"

    # Bob is in the room but no moderator: refused.
    status, body = await hs.request(
        "PUT", path, token=bob.access_token, json={"visibility": "public"}
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await hs.request(
        "PUT", path, token=alice.access_token, json={"visibility": "hidden"}
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    assert (await _public_rooms(hs))["chunk"] == []

    status, _ = await hs.request(
        "PUT", path, token=alice.access_token, json={"visibility": "public"}
    )
    assert status == 200
    assert (await bob.room_get_visibility(room_id)).visibility == "public"
    assert [r["room_id"] for r in (await _public_rooms(hs))["chunk"]] == [room_id]

    status, _ = await hs.request(
        "PUT", path, token=alice.access_token, json={"visibility": "private"}
    )
    assert status == 200
    assert (await _public_rooms(hs))["chunk"] == []

    status, body = await hs.request("GET", f"{V3}/directory/list/room/!unknown:localhost")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await hs.request(
        "PUT",
        f"{V3}/directory/list/room/!unknown:localhost",
        token=alice.access_token,
        json={"visibility": "public"},
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
