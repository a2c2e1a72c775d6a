"""Compliance search: an admin finds messages in rooms they are not in, by
text, sender, room and time, page by page, and every query is audited."""

from __future__ import annotations

import time
from typing import Any

from tests.admin.conftest import Admin


async def send(hs: Any, token: str, room_id: str, body: str) -> str:
    status, sent = await hs.request(
        "POST",
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message",
        token=token,
        json={"msgtype": "m.text", "body": body},
    )
    assert status == 200, sent
    return sent["event_id"]


async def new_room(hs: Any, token: str) -> str:
    status, body = await hs.request("POST", "/_matrix/client/v3/createRoom", token=token, json={})
    assert status == 200, body
    return body["room_id"]


async def search(admin: Admin, **criteria: Any) -> tuple[int, Any]:
    return await admin.call("POST", "/v1/compliance/search", criteria)


async def test_finds_messages_in_rooms_the_admin_is_not_in(admin: Admin) -> None:
    hs = admin.hs
    alice = (await hs.register("alice"))["access_token"]
    bob = (await hs.register("bob"))["access_token"]
    sales, board = await new_room(hs, alice), await new_room(hs, bob)
    first = await send(hs, alice, sales, "The quarterly forecast is attached")
    await send(hs, alice, sales, "lunch at noon?")
    middle = int(time.time() * 1000)
    second = await send(hs, bob, board, "Quarterly results: do not forward")
    redacted = await send(hs, bob, board, "quarterly draft, wrong room")
    status, _ = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{board}/redact/{redacted}/txn1",
        token=bob,
        json={},
    )
    assert status == 200

    status, body = await search(admin, search_term="quarterly")
    assert status == 200, body
    assert [e["event_id"] for e in body["results"]] == [second, first]
    assert body["results"][0]["content"]["body"] == "Quarterly results: do not forward"
    assert body["results"][0]["room_id"] == board
    assert body["highlights"] == ["quarterly"]
    assert "next_batch" not in body

    status, body = await search(admin, search_term="quarterly", sender="@alice:localhost")
    assert [e["event_id"] for e in body["results"]] == [first]
    status, body = await search(admin, search_term="quarterly", room_id=board)
    assert [e["event_id"] for e in body["results"]] == [second]
    status, body = await search(admin, search_term="quarterly", from_ts=middle)
    assert [e["event_id"] for e in body["results"]] == [second]
    status, body = await search(admin, search_term="quarterly", to_ts=middle)
    assert [e["event_id"] for e in body["results"]] == [first]

    # Paging: one at a time, newest first, to the end.
    status, page = await search(admin, search_term="quarterly", limit=1)
    assert [e["event_id"] for e in page["results"]] == [second]
    status, page = await search(
        admin, search_term="quarterly", limit=1, next_batch=page["next_batch"]
    )
    assert [e["event_id"] for e in page["results"]] == [first]
    status, page = await search(
        admin, search_term="quarterly", limit=1, next_batch=page["next_batch"]
    )
    assert page["results"] == [] and "next_batch" not in page

    # Every query is in the audit log, with what was searched for.
    status, log = await admin.call("GET", "/v1/audit_log?action=compliance_search&dir=f")
    assert status == 200
    entries = log["entries"]
    assert len(entries) == 8
    assert entries[0]["admin_user_id"] == admin.user_id
    assert entries[0]["params"] == {"body": {"search_term": "quarterly"}}
    assert entries[1]["params"]["body"]["sender"] == "@alice:localhost"


async def test_only_admins_and_only_good_input(admin: Admin) -> None:
    hs = admin.hs
    alice = (await hs.register("alice"))["access_token"]
    status, body = await hs.request(
        "POST",
        "/_synapse/admin/v1/compliance/search",
        token=alice,
        json={"search_term": "anything"},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    for criteria, errcode in [
        ({}, "M_MISSING_PARAM"),
        ({"search_term": ""}, "M_INVALID_PARAM"),
        ({"search_term": 5}, "M_INVALID_PARAM"),
        ({"search_term": "x", "sender": "alice"}, "M_INVALID_PARAM"),
        ({"search_term": "x", "room_id": "#alias:localhost"}, "M_INVALID_PARAM"),
        ({"search_term": "x", "limit": 0}, "M_INVALID_PARAM"),
        ({"search_term": "x", "limit": 10_000}, "M_INVALID_PARAM"),
        ({"search_term": "x", "from_ts": "yesterday"}, "M_INVALID_PARAM"),
        ({"search_term": "x", "next_batch": "abc"}, "M_INVALID_PARAM"),
    ]:
        status, body = await search(admin, **criteria)
        assert (status, body["errcode"]) == (400, errcode), criteria
