"""Unread notification and highlight counts in /sync, between users driving
matrix-nio: push rules decide what counts, receipts clear it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import nio
import pytest
from nio.api import ReceiptType

V3 = "/_matrix/client/v3"
THREADS_APART = {"room": {"timeline": {"unread_thread_notifications": True}}}


@pytest.fixture
async def users(hs: Any) -> AsyncIterator[Callable[..., Any]]:
    """Registers a user (with a display name, if given) and returns a logged-in nio client."""
    clients: list[nio.AsyncClient] = []

    async def make(name: str, display_name: str | None = None) -> nio.AsyncClient:
        body = await hs.register(name)
        client = nio.AsyncClient(hs.url, body["user_id"])
        client.restore_login(body["user_id"], body["device_id"], body["access_token"])
        clients.append(client)
        if display_name is not None:
            resp = await client.set_displayname(display_name)
            assert isinstance(resp, nio.ProfileSetDisplayNameResponse), resp
        return client

    yield make
    for client in clients:
        await client.close()


async def room_with(owner: Any, *others: Any) -> str:
    created = await owner.room_create(invite=[o.user_id for o in others])
    assert isinstance(created, nio.RoomCreateResponse), created
    for other in others:
        assert isinstance(await other.join(created.room_id), nio.JoinResponse)
    return created.room_id


async def send_text(client: Any, room_id: str, body: str, **extra: Any) -> str:
    resp = await client.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": body, **extra}
    )
    assert isinstance(resp, nio.RoomSendResponse), resp
    return resp.event_id


async def counts(
    hs: Any, client: Any, room_id: str, since: str | None = None
) -> tuple[int, int] | None:
    """(notification_count, highlight_count) of a joined room in an initial
    /sync, or as matrix-nio reads it from an incremental one from `since`;
    None if the room is not in the response."""
    if since is None:
        room = (await raw_sync(hs, client))["rooms"]["join"].get(room_id)
        if room is None:
            return None
        unread = room["unread_notifications"]
        return unread["notification_count"], unread["highlight_count"]
    resp = await client.sync(timeout=0, since=since)
    assert isinstance(resp, nio.SyncResponse), resp
    joined = resp.rooms.join.get(room_id)
    if joined is None:
        return None
    return (
        joined.unread_notifications.notification_count,
        joined.unread_notifications.highlight_count,
    )


async def next_batch(hs: Any, client: Any) -> str:
    return (await raw_sync(hs, client))["next_batch"]


async def raw_sync(hs: Any, client: Any, sync_filter: dict[str, Any] | None = None) -> dict:
    path = f"{V3}/sync"
    if sync_filter is not None:
        path += "?filter=" + json.dumps(sync_filter)
    status, body = await hs.request("GET", path, token=client.access_token)
    assert status == 200, body
    return body


async def test_display_name_mention_highlights(hs, users):
    alice = await users("alice", "Wonderland Queen")
    bob = await users("bob")
    room_id = await room_with(alice, bob)
    await send_text(bob, room_id, "is the wonderland queen around?")
    assert await counts(hs, alice, room_id) == (1, 1)
    await send_text(bob, room_id, "never mind")
    assert await counts(hs, alice, room_id) == (2, 1)
    # A name inside a longer word is no mention.
    await send_text(bob, room_id, "Wonderland Queens are rare")
    assert await counts(hs, alice, room_id) == (3, 1)
    assert await counts(hs, bob, room_id) == (0, 0)


async def test_intentional_mention_highlights(hs, users):
    alice = await users("alice")
    bob = await users("bob")
    carol = await users("carol")
    room_id = await room_with(alice, bob, carol)
    await send_text(bob, room_id, "look", **{"m.mentions": {"user_ids": [alice.user_id]}})
    assert await counts(hs, alice, room_id) == (1, 1)
    assert await counts(hs, carol, room_id) == (1, 0)


async def test_plain_message_own_messages_and_receipts(hs, users):
    alice = await users("alice")
    bob = await users("bob")
    room_id = await room_with(alice, bob)
    first = await send_text(bob, room_id, "hello")
    assert await counts(hs, alice, room_id) == (1, 0)
    # The sender's own messages never count for them.
    assert await counts(hs, bob, room_id) == (0, 0)
    since = await next_batch(hs, alice)
    await send_text(alice, room_id, "hi back")
    await send_text(alice, room_id, "how are you?")
    assert await counts(hs, alice, room_id, since) == (1, 0)
    assert await counts(hs, bob, room_id) == (2, 0)
    # A receipt clears the count, and the room is in the next incremental sync.
    since = await next_batch(hs, alice)
    receipt = await alice.update_receipt_marker(room_id, first)
    assert isinstance(receipt, nio.UpdateReceiptMarkerResponse), receipt
    assert await counts(hs, alice, room_id, since) == (0, 0)
    assert await counts(hs, alice, room_id) == (0, 0)
    # New messages count from the receipt on; a private receipt clears too.
    second = await send_text(bob, room_id, "fine")
    await send_text(bob, room_id, "and you?")
    assert await counts(hs, alice, room_id) == (2, 0)
    since = await next_batch(hs, alice)
    marked = await alice.room_read_markers(room_id, second, private_read_event=second)
    assert isinstance(marked, nio.RoomReadMarkersResponse), marked
    assert await counts(hs, alice, room_id, since) == (1, 0)
    # A receipt on an older event does not bring counts back.
    await alice.update_receipt_marker(room_id, first)
    assert await counts(hs, alice, room_id) == (1, 0)


async def test_disabled_rule_stops_notifications(hs, users):
    alice = await users("alice", "Alice Liddell")
    bob = await users("bob")
    carol = await users("carol")
    room_id = await room_with(alice, bob, carol)
    path = f"{V3}/pushrules/global/underride/.m.rule.message/enabled"
    status, _ = await hs.request("PUT", path, token=alice.access_token, json={"enabled": False})
    assert status == 200
    await send_text(bob, room_id, "plain words")
    assert await counts(hs, alice, room_id) == (0, 0)
    assert await counts(hs, carol, room_id) == (1, 0)
    # Other rules still apply.
    await send_text(bob, room_id, "ping Alice Liddell")
    assert await counts(hs, alice, room_id) == (1, 1)
    status, _ = await hs.request("PUT", path, token=alice.access_token, json={"enabled": True})
    assert status == 200
    await send_text(bob, room_id, "plain again")
    assert await counts(hs, alice, room_id) == (2, 1)


async def test_room_rule_silences_one_room(hs, users):
    alice = await users("alice")
    bob = await users("bob")
    quiet = await room_with(alice, bob)
    loud = await room_with(bob, alice)
    path = f"{V3}/pushrules/global/room/{quiet}"
    status, _ = await hs.request("PUT", path, token=alice.access_token, json={"actions": []})
    assert status == 200
    await send_text(bob, quiet, "shh")
    await send_text(bob, loud, "hey")
    assert await counts(hs, alice, quiet) == (0, 0)
    assert await counts(hs, alice, loud) == (1, 0)


async def test_room_mention_needs_the_senders_power(hs, users):
    alice = await users("alice")
    bob = await users("bob")
    room_id = await room_with(alice, bob)
    # The creator has power level 100; bob has 0, and "room" needs 50.
    await send_text(alice, room_id, "@room meeting now")
    assert await counts(hs, bob, room_id) == (1, 1)
    await send_text(bob, room_id, "@room me too")
    assert await counts(hs, alice, room_id) == (1, 0)


async def test_thread_counts_apart_and_threaded_receipts(hs, users):
    alice = await users("alice")
    bob = await users("bob")
    room_id = await room_with(alice, bob)
    root = await send_text(alice, room_id, "a thread")
    in_thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    await send_text(bob, room_id, "reply one", **in_thread)
    last_reply = await send_text(bob, room_id, "reply two", **in_thread)
    main = await send_text(bob, room_id, "main timeline")
    # Without the filter flag, the room's count covers the threads too.
    room = (await raw_sync(hs, alice))["rooms"]["join"][room_id]
    assert room["unread_notifications"] == {"notification_count": 3, "highlight_count": 0}
    assert "unread_thread_notifications" not in room
    room = (await raw_sync(hs, alice, THREADS_APART))["rooms"]["join"][room_id]
    assert room["unread_notifications"] == {"notification_count": 1, "highlight_count": 0}
    assert room["unread_thread_notifications"] == {
        root: {"notification_count": 2, "highlight_count": 0}
    }
    # A receipt in the thread clears only the thread.
    receipt = await alice.update_receipt_marker(room_id, last_reply, thread_id=root)
    assert isinstance(receipt, nio.UpdateReceiptMarkerResponse), receipt
    room = (await raw_sync(hs, alice, THREADS_APART))["rooms"]["join"][room_id]
    assert room["unread_notifications"] == {"notification_count": 1, "highlight_count": 0}
    assert "unread_thread_notifications" not in room
    room = (await raw_sync(hs, alice))["rooms"]["join"][room_id]
    assert room["unread_notifications"]["notification_count"] == 1
    # A new thread reply counts again; an unthreaded receipt clears everything.
    await send_text(bob, room_id, "reply three", **in_thread)
    room = (await raw_sync(hs, alice, THREADS_APART))["rooms"]["join"][room_id]
    assert room["unread_thread_notifications"][root]["notification_count"] == 1
    latest = await send_text(bob, room_id, "main again")
    receipt = await alice.update_receipt_marker(
        room_id, latest, receipt_type=ReceiptType.read, thread_id=None
    )
    assert isinstance(receipt, nio.UpdateReceiptMarkerResponse), receipt
    room = (await raw_sync(hs, alice, THREADS_APART))["rooms"]["join"][room_id]
    assert room["unread_notifications"] == {"notification_count": 0, "highlight_count": 0}
    assert "unread_thread_notifications" not in room
    assert main


async def test_invites_notify_but_count_only_after_joining(hs, users):
    alice = await users("alice")
    bob = await users("bob")
    room_id = await room_with(alice, bob)
    other = await room_with(alice, bob)
    carol = await users("carol")
    invited = await alice.room_invite(room_id, carol.user_id)
    assert isinstance(invited, nio.RoomInviteResponse), invited
    # Each invitee got a notification for their invite (pushers will use
    # them); the inviter got none.
    rows = await hs.pool.fetch(
        """SELECT user_id, room_id, highlight FROM event_push_notifications
           ORDER BY stream_ordering"""
    )
    assert [tuple(r) for r in rows] == [
        (bob.user_id, room_id, False),
        (bob.user_id, other, False),
        (carol.user_id, room_id, False),
    ]
    # Once joined, the invite is no unread message: every joined room
    # carries counts, zero here.
    assert isinstance(await carol.join(room_id), nio.JoinResponse)
    for client, rooms in ((bob, (room_id, other)), (carol, (room_id,))):
        body = await raw_sync(hs, client)
        for joined in rooms:
            assert body["rooms"]["join"][joined]["unread_notifications"] == {
                "notification_count": 0,
                "highlight_count": 0,
            }
    await send_text(alice, room_id, "welcome")
    assert await counts(hs, carol, room_id) == (1, 0)
