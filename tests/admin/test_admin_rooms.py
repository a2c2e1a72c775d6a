"""Admin API: rooms. Deleted rooms lose their local members and stay blocked."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.admin.conftest import V3


async def public_room(hs: Any, owner: dict, *members: dict, **extra: Any) -> str:
    status, body = await hs.request(
        "POST",
        f"{V3}/createRoom",
        token=owner["access_token"],
        json={"preset": "public_chat", **extra},
    )
    assert status == 200, body
    for member in members:
        status, _ = await hs.request(
            "POST", f"{V3}/join/{body['room_id']}", token=member["access_token"]
        )
        assert status == 200
    return body["room_id"]


async def say(hs: Any, user: dict, room_id: str, text: str, txn: str) -> str:
    status, body = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.message/{txn}",
        token=user["access_token"],
        json={"msgtype": "m.text", "body": text},
    )
    assert status == 200, body
    return body["event_id"]


async def test_list_and_details(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    bob = await hs.register("bob")
    room_a = await public_room(
        hs, alice, bob, name="Apples", room_alias_name="apples", visibility="public"
    )
    room_b = await public_room(hs, bob, name="Bananas")

    status, body = await admin.call("GET", "/v1/rooms")
    assert status == 200
    assert body["total_rooms"] == 2
    assert [r["name"] for r in body["rooms"]] == ["Apples", "Bananas"]
    apples = body["rooms"][0]
    assert apples == {
        "room_id": room_a,
        "name": "Apples",
        "canonical_alias": "#apples:localhost",
        "joined_members": 2,
        "joined_local_members": 2,
        "version": apples["version"],
        "creator": "@alice:localhost",
        "encryption": None,
        "federatable": True,
        "public": True,
        "join_rules": "public",
        "guest_access": None,
        "history_visibility": "shared",
        "state_events": apples["state_events"],
        "room_type": None,
    }
    assert apples["state_events"] >= 6

    status, body = await admin.call("GET", "/v1/rooms?order_by=joined_members&dir=b&limit=1")
    assert [r["room_id"] for r in body["rooms"]] == [room_a]
    assert body["next_batch"] == 1
    status, body = await admin.call("GET", "/v1/rooms?search_term=banan")
    assert [r["room_id"] for r in body["rooms"]] == [room_b]

    status, body = await admin.call("GET", f"/v1/rooms/{room_a}")
    assert (body["name"], body["joined_local_devices"]) == ("Apples", 2)
    status, body = await admin.call("GET", f"/v1/rooms/{room_a}/members")
    assert body == {"members": ["@alice:localhost", "@bob:localhost"], "total": 2}
    status, body = await admin.call("GET", f"/v1/rooms/{room_a}/state")
    assert {e["type"] for e in body["state"]} >= {"m.room.create", "m.room.name"}
    status, body = await admin.call("GET", "/v1/rooms/!unknown:localhost")
    assert status == 404


async def test_messages_are_all_visible_to_admins(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    room_id = await public_room(hs, alice)
    for n in range(3):
        await say(hs, alice, room_id, f"m{n}", str(n))
    status, body = await admin.call("GET", f"/v1/rooms/{room_id}/messages?limit=2")
    assert status == 200
    assert [e["content"]["body"] for e in body["chunk"]] == ["m2", "m1"]
    status, more = await admin.call(
        "GET", f"/v1/rooms/{room_id}/messages?limit=2&from={body['end']}"
    )
    assert more["chunk"][0]["content"]["body"] == "m0"


async def test_delete_room_moves_users_and_blocks_rejoining(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    bob = await hs.register("bob")
    room_id = await public_room(hs, alice, bob, room_alias_name="doomed")
    await say(hs, bob, room_id, "illegal", "1")

    status, body = await admin.call(
        "DELETE",
        f"/v1/rooms/{room_id}",
        {
            "new_room_user_id": admin.user_id,
            "room_name": "Moved",
            "message": "This room was shut down",
            "block": True,
            "purge": True,
        },
    )
    assert status == 200, body
    assert body["kicked_users"] == ["@alice:localhost", "@bob:localhost"]
    assert body["failed_to_kick_users"] == []
    assert body["local_aliases"] == ["#doomed:localhost"]
    new_room = body["new_room_id"]

    # No local members are left, and nothing of the room is stored any more.
    assert (
        await hs.pool.fetchval("SELECT count(*) FROM current_state WHERE room_id = $1", room_id)
        == 0
    )
    assert await hs.pool.fetchval("SELECT count(*) FROM events WHERE room_id = $1", room_id) == 0
    status, joined = await hs.request("GET", f"{V3}/joined_rooms", token=bob["access_token"])
    assert joined["joined_rooms"] == [new_room]
    status, page = await hs.request(
        "GET", f"{V3}/rooms/{new_room}/messages?dir=b", token=bob["access_token"]
    )
    assert "This room was shut down" in [e["content"].get("body") for e in page["chunk"]]

    status, body = await hs.request("POST", f"{V3}/join/{room_id}", token=bob["access_token"])
    assert status in (403, 404)
    status, body = await admin.call("GET", f"/v1/rooms/{room_id}/block")
    assert body == {"block": True, "user_id": admin.user_id}
    status, _ = await admin.call("GET", f"/v1/rooms/{room_id}")
    assert status == 404


async def test_blocked_room_refuses_joins_until_unblocked(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    bob = await hs.register("bob")
    room_id = await public_room(hs, alice)
    status, body = await admin.call("PUT", f"/v1/rooms/{room_id}/block", {"block": True})
    assert (status, body) == (200, {"block": True})
    status, body = await hs.request("POST", f"{V3}/join/{room_id}", token=bob["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    await admin.call("PUT", f"/v1/rooms/{room_id}/block", {"block": False})
    status, body = await admin.call("GET", f"/v1/rooms/{room_id}/block")
    assert body == {"block": False}
    status, _ = await hs.request("POST", f"{V3}/join/{room_id}", token=bob["access_token"])
    assert status == 200


async def test_delete_room_v2_in_background(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    room_id = await public_room(hs, alice)
    status, body = await admin.call("DELETE", f"/v2/rooms/{room_id}", {"purge": True})
    assert status == 200
    delete_id = body["delete_id"]
    for _ in range(100):
        status, status_body = await admin.call("GET", f"/v2/rooms/delete_status/{delete_id}")
        if status_body["status"] == "complete":
            break
        await asyncio.sleep(0.05)
    assert status_body["status"] == "complete"
    assert status_body["shutdown_room"]["kicked_users"] == ["@alice:localhost"]
    status, body = await admin.call("GET", f"/v2/rooms/{room_id}/delete_status")
    assert [r["delete_id"] for r in body["results"]] == [delete_id]
    status, joined = await hs.request("GET", f"{V3}/joined_rooms", token=alice["access_token"])
    assert joined["joined_rooms"] == []


async def test_join_user_and_make_room_admin(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    await hs.register("carl")
    status, room = await hs.request(
        "POST", f"{V3}/createRoom", token=alice["access_token"], json={"preset": "private_chat"}
    )
    room_id = room["room_id"]
    # A private room the admin is not in: no join through the admin.
    status, body = await admin.call("POST", f"/v1/join/{room_id}", {"user_id": "@carl:localhost"})
    assert status == 403
    # make_room_admin works through Alice, the room's admin.
    status, body = await admin.call("POST", f"/v1/rooms/{room_id}/make_room_admin", {})
    assert status == 200, body
    status, members = await admin.call("GET", f"/v1/rooms/{room_id}/members")
    assert admin.user_id in members["members"]
    status, power = await hs.request(
        "GET", f"{V3}/rooms/{room_id}/state/m.room.power_levels", token=alice["access_token"]
    )
    # Alice created the room (room version 12: a creator, above every level), so
    # the admin gets the highest level a non-creator can have.
    assert power["users"][admin.user_id] == 100
    # Now an admin in the room can bring Carl in.
    status, body = await admin.call("POST", f"/v1/join/{room_id}", {"user_id": "@carl:localhost"})
    assert (status, body) == (200, {"room_id": room_id})
    status, members = await admin.call("GET", f"/v1/rooms/{room_id}/members")
    assert "@carl:localhost" in members["members"]


async def test_forward_extremities(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    room_id = await public_room(hs, alice)
    status, body = await admin.call("GET", f"/v1/rooms/{room_id}/forward_extremities")
    assert status == 200 and body["count"] == 1
    assert set(body["results"][0]) == {"event_id", "state_group", "depth", "received_ts"}
    status, body = await admin.call("DELETE", f"/v1/rooms/{room_id}/forward_extremities")
    assert body == {"deleted": 0}


async def test_purge_history_deletes_old_messages(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    room_id = await public_room(hs, alice)
    old = [await say(hs, alice, room_id, f"old{n}", f"o{n}") for n in range(3)]
    cut = await say(hs, alice, room_id, "cut", "cut")
    await say(hs, alice, room_id, "new", "new")
    status, body = await admin.call(
        "POST",
        f"/v1/purge_history/{room_id}",
        {"purge_up_to_event_id": cut, "delete_local_events": True},
    )
    assert status == 200, body
    purge_id = body["purge_id"]
    for _ in range(100):
        status, result = await admin.call("GET", f"/v1/purge_history_status/{purge_id}")
        if result["status"] != "active":
            break
        await asyncio.sleep(0.05)
    assert result == {"status": "complete"}
    left = await hs.pool.fetch("SELECT event_id FROM events WHERE event_id = ANY($1)", old)
    assert left == []
    status, page = await hs.request(
        "GET", f"{V3}/rooms/{room_id}/messages?dir=b&limit=50", token=alice["access_token"]
    )
    bodies = [e["content"]["body"] for e in page["chunk"] if e["type"] == "m.room.message"]
    assert bodies == ["new", "cut"]
    # The state survived: the room still works.
    await say(hs, alice, room_id, "after", "after")

    status, body = await admin.call(
        "POST", f"/v1/purge_history/{room_id}", {"delete_local_events": True}
    )
    assert status == 400
