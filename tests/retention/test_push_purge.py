"""The purge drops both kinds of notification rows of the events it purges:
the common row and the per-user ones (issue 24)."""

from __future__ import annotations

from storage.database import now_ms
from tests.conftest import RunningServer
from tests.retention.conftest import DAY, V3, make_room, put_message, room_path


async def unread(hs: RunningServer, token: str, room_id: str) -> dict[str, int]:
    status, body = await hs.request("GET", f"{V3}/sync", token=token)
    assert status == 200, body
    return body["rooms"]["join"][room_id]["unread_notifications"]


async def test_purged_messages_leave_no_notifications(retention_hs: RunningServer) -> None:
    hs = retention_hs
    alice = (await hs.register("alice"))["access_token"]
    bob_user = await hs.register("bob")
    bob = bob_user["access_token"]
    room = await make_room(hs, alice, {"max_lifetime": DAY})
    status, body = await hs.request("POST", f"{V3}/join/{room_path(room)}", token=bob, json={})
    assert status == 200, body
    plain = await put_message(hs, alice, room, {"msgtype": "m.text", "body": "hi"}, "t1")
    mention = await put_message(
        hs,
        alice,
        room,
        {"msgtype": "m.text", "body": "you", "m.mentions": {"user_ids": [bob_user["user_id"]]}},
        "t2",
    )
    assert await unread(hs, bob, room) == {"notification_count": 2, "highlight_count": 1}
    counted = """SELECT (SELECT count(*) FROM event_push_common WHERE event_id = ANY($1))
                      + (SELECT count(*) FROM event_push_notifications WHERE event_id = ANY($1))"""
    # The plain message's common row; bob's own for the mention (nobody else
    # is left for a common row of it).
    assert await hs.pool.fetchval(counted, [plain, mention]) == 2

    assert (await hs.server.purge_job.run_once(now_ms() + 2 * DAY)).expired == 2
    assert await hs.pool.fetchval(counted, [plain, mention]) == 0
    assert await unread(hs, bob, room) == {"notification_count": 0, "highlight_count": 0}
    status, listed = await hs.request("GET", f"{V3}/notifications", token=bob)
    assert status == 200, listed
    assert [n["event"]["event_id"] for n in listed["notifications"]] == []
