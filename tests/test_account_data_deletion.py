"""Account data deletion (MSC3391) over real HTTP: the DELETE endpoints, `{}`
through PUT counting as deletion, and the deletion reaching the user's other
clients through /sync (matrix-nio) and sliding sync as empty content."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import nio

from tests.sliding_sync.helpers import User, all_rooms, new_user

V3 = "/_matrix/client/v3"
MSC3391 = "/_matrix/client/unstable/org.matrix.msc3391"


def global_path(prefix: str, user_id: str, data_type: str) -> str:
    return f"{prefix}/user/{quote(user_id)}/account_data/{quote(data_type)}"


def room_path(prefix: str, user_id: str, room_id: str, data_type: str) -> str:
    return f"{prefix}/user/{quote(user_id)}/rooms/{quote(room_id)}/account_data/{data_type}"


async def nio_client(hs: Any, user: User) -> nio.AsyncClient:
    client = nio.AsyncClient(hs.url, user.user_id)
    whoami = await user.call("GET", f"{V3}/account/whoami")
    client.restore_login(user.user_id, whoami["device_id"], user.token)
    return client


def global_events(resp: nio.SyncResponse) -> dict[str, Any]:
    return {
        e.type: e.content
        for e in resp.account_data_events
        if isinstance(e, nio.UnknownAccountDataEvent)
    }


async def test_delete_global_account_data_reaches_sync(hs: Any) -> None:
    alice = await new_user(hs, "alice")
    client = await nio_client(hs, alice)
    try:
        await alice.call("PUT", global_path(V3, alice.user_id, "org.example.a"), {"x": 1})
        first = await client.sync(timeout=0)
        assert isinstance(first, nio.SyncResponse)
        assert global_events(first)["org.example.a"] == {"x": 1}

        assert (
            await alice.call("DELETE", global_path(MSC3391, alice.user_id, "org.example.a")) == {}
        )
        status, body = await hs.request(
            "GET", global_path(V3, alice.user_id, "org.example.a"), token=alice.token
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

        # The other client learns of the deletion as an event with empty content.
        later = await client.sync(timeout=0, since=first.next_batch)
        assert isinstance(later, nio.SyncResponse)
        assert global_events(later) == {"org.example.a": {}}
        # A fresh client is told the same (as Synapse does).
        initial = await client.sync(timeout=0, full_state=True)
        assert isinstance(initial, nio.SyncResponse)
        assert global_events(initial).get("org.example.a") == {}

        # Deleting again, or what never existed, succeeds and sends nothing new.
        assert (
            await alice.call("DELETE", global_path(MSC3391, alice.user_id, "org.example.a")) == {}
        )
        assert (
            await alice.call("DELETE", global_path(MSC3391, alice.user_id, "org.example.b")) == {}
        )
        quiet = await client.sync(timeout=0, since=later.next_batch)
        assert isinstance(quiet, nio.SyncResponse)
        assert global_events(quiet) == {}

        # Setting it again brings it back.
        await alice.call("PUT", global_path(V3, alice.user_id, "org.example.a"), {"x": 2})
        assert await alice.call("GET", global_path(V3, alice.user_id, "org.example.a")) == {"x": 2}
    finally:
        await client.close()


async def test_put_empty_object_is_deletion(hs: Any) -> None:
    alice = await new_user(hs, "alice")
    room_id = await alice.create_room()
    path = room_path(V3, alice.user_id, room_id, "org.example.r")
    await alice.call("PUT", path, {"y": True})
    pos = (await alice.sync_ok({**all_rooms(), "extensions": {"account_data": {"enabled": True}}}))[
        "pos"
    ]
    assert await alice.call("PUT", path, {}) == {}
    status, body = await hs.request("GET", path, token=alice.token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    # Sliding sync tells of the deletion as room account data with empty content.
    result = await alice.sync_ok(
        {**all_rooms(), "extensions": {"account_data": {"enabled": True}}}, pos=pos
    )
    rooms = result["extensions"]["account_data"]["rooms"]
    assert {"type": "org.example.r", "content": {}} in rooms[room_id]


async def test_delete_room_account_data(hs: Any) -> None:
    alice = await new_user(hs, "alice")
    room_id = await alice.create_room()
    await alice.call("PUT", room_path(V3, alice.user_id, room_id, "org.example.r"), {"z": 1})
    deleted = await alice.call(
        "DELETE", room_path(MSC3391, alice.user_id, room_id, "org.example.r")
    )
    assert deleted == {}
    status, _ = await hs.request(
        "GET", room_path(V3, alice.user_id, room_id, "org.example.r"), token=alice.token
    )
    assert status == 404


async def test_bad_deletions_are_refused_and_change_nothing(hs: Any) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    await alice.call("PUT", global_path(V3, alice.user_id, "org.example.a"), {"keep": 1})

    # Another user's account data.
    status, body = await hs.request(
        "DELETE", global_path(MSC3391, alice.user_id, "org.example.a"), token=bob.token
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    # Without a token.
    status, body = await hs.request("DELETE", global_path(MSC3391, alice.user_id, "org.example.a"))
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    # Types the server manages.
    status, body = await hs.request(
        "DELETE", global_path(MSC3391, alice.user_id, "m.push_rules"), token=alice.token
    )
    assert status == 405 and body["errcode"]
    # A malformed room id.
    status, body = await hs.request(
        "DELETE",
        room_path(MSC3391, alice.user_id, "not-a-room", "org.example.a"),
        token=alice.token,
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")

    assert await alice.call("GET", global_path(V3, alice.user_id, "org.example.a")) == {"keep": 1}
    assert (await alice.call("GET", "/_matrix/client/versions"))["unstable_features"][
        "org.matrix.msc3391"
    ]
