"""Typing notifications, read receipts and read markers, between two users in
a room, as matrix-nio sees them through /sync."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nio
from nio.api import ReceiptType

from homeserver.ephemeral.common import StreamPublisher
from homeserver.ephemeral.receipts import ReceiptService
from homeserver.notifier import Notifier
from storage.receipts import ReceiptStore
from storage.rooms import RoomStore
from storage.streams import StreamIds

V3 = "/_matrix/client/v3"


async def room_of_two(users: Callable[[str], Any]) -> tuple[Any, Any, str]:
    alice = await users("alice")
    bob = await users("bob")
    created = await alice.room_create(invite=[bob.user_id])
    assert isinstance(created, nio.RoomCreateResponse), created
    assert isinstance(await bob.join(created.room_id), nio.JoinResponse)
    return alice, bob, created.room_id


async def send_text(client: Any, room_id: str, body: str, **extra: Any) -> str:
    resp = await client.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": body, **extra}
    )
    assert isinstance(resp, nio.RoomSendResponse), resp
    return resp.event_id


async def ephemeral_until(
    client: Any, room_id: str, since: str, wanted: Callable[[list[Any]], bool]
) -> tuple[list[Any], str]:
    """Long-poll /sync from `since` until the room's ephemeral events satisfy
    `wanted`; return them and the next token."""
    for _ in range(20):
        resp = await client.sync(timeout=10_000, since=since)
        assert isinstance(resp, nio.SyncResponse), resp
        since = resp.next_batch
        room = resp.rooms.join.get(room_id)
        events = room.ephemeral if room is not None else []
        if wanted(events):
            return events, since
    raise AssertionError("the expected ephemeral events never came")


def typing_of(events: list[Any]) -> list[list[str]]:
    return [e.users for e in events if isinstance(e, nio.TypingNoticeEvent)]


def receipts_of(events: list[Any]) -> list[tuple[str, str, str, str | None]]:
    return [
        (r.event_id, r.receipt_type, r.user_id, r.thread_id)
        for e in events
        if isinstance(e, nio.ReceiptEvent)
        for r in e.receipts
    ]


async def test_typing_appears_then_stops_with_typing_false(users):
    alice, bob, room_id = await room_of_two(users)
    start = (await bob.sync(timeout=0)).next_batch
    assert isinstance(
        await alice.room_typing(room_id, True, timeout=30_000), nio.RoomTypingResponse
    )
    events, since = await ephemeral_until(bob, room_id, start, typing_of)
    assert typing_of(events) == [[alice.user_id]]

    # An initial sync shows who is typing now, to both members.
    for client in (alice, bob):
        initial = await client.sync(timeout=0, full_state=True, since=None)
        assert typing_of(initial.rooms.join[room_id].ephemeral) == [[alice.user_id]]

    await alice.room_typing(room_id, False)
    events, _ = await ephemeral_until(bob, room_id, since, typing_of)
    assert typing_of(events) == [[]]


async def test_typing_ends_on_its_own_after_the_timeout(users):
    alice, bob, room_id = await room_of_two(users)
    since = (await bob.sync(timeout=0)).next_batch
    await alice.room_typing(room_id, True, timeout=300)
    seen = []
    while [] not in seen:
        events, since = await ephemeral_until(bob, room_id, since, typing_of)
        seen.extend(typing_of(events))
    assert seen in ([[alice.user_id], []], [[]])
    # Nobody typing: an initial sync says nothing about typing.
    initial = await bob.sync(timeout=0, full_state=True, since=None)
    room = initial.rooms.join.get(room_id)
    assert typing_of(room.ephemeral if room else []) == []


async def test_typing_refused_for_others_and_outside_the_room(hs, users):
    alice, bob, room_id = await room_of_two(users)
    carol = await users("carol")
    path = f"{V3}/rooms/{room_id}/typing"
    status, body = await hs.request(
        "PUT", f"{path}/{bob.user_id}", token=alice.access_token, json={"typing": True}
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    resp = await carol.room_typing(room_id, True)
    assert isinstance(resp, nio.RoomTypingError) and resp.status_code == "M_FORBIDDEN"
    for bad, errcode in (
        ({"typing": "yes"}, "M_BAD_JSON"),
        ({}, "M_MISSING_PARAM"),
        ({"typing": True, "timeout": "soon"}, "M_BAD_JSON"),
    ):
        status, body = await hs.request(
            "PUT", f"{path}/{alice.user_id}", token=alice.access_token, json=bad
        )
        assert (status, body["errcode"]) == (400, errcode), bad
    # None of that made anyone typing.
    initial = await bob.sync(timeout=0, full_state=True, since=None)
    room = initial.rooms.join.get(room_id)
    assert typing_of(room.ephemeral if room else []) == []


async def test_receipt_reaches_the_other_member_and_private_one_does_not(users):
    alice, bob, room_id = await room_of_two(users)
    first = await send_text(alice, room_id, "one")
    second = await send_text(alice, room_id, "two")
    since = (await alice.sync(timeout=0)).next_batch
    bob_since = (await bob.sync(timeout=0)).next_batch

    assert isinstance(
        await bob.update_receipt_marker(room_id, first), nio.UpdateReceiptMarkerResponse
    )
    events, since = await ephemeral_until(alice, room_id, since, receipts_of)
    assert receipts_of(events) == [(first, "m.read", bob.user_id, "main")]

    # A private receipt: bob sees his own, alice never does.
    resp = await bob.update_receipt_marker(
        room_id, second, receipt_type=ReceiptType.read_private, thread_id=None
    )
    assert isinstance(resp, nio.UpdateReceiptMarkerResponse), resp
    events, _ = await ephemeral_until(bob, room_id, bob_since, lambda e: len(receipts_of(e)) >= 2)
    assert sorted(receipts_of(events)) == sorted(
        [(first, "m.read", bob.user_id, "main"), (second, "m.read.private", bob.user_id, None)]
    )
    await send_text(alice, room_id, "three")
    later = await alice.sync(timeout=0, since=since)
    room = later.rooms.join.get(room_id)
    assert receipts_of(room.ephemeral if room else []) == []
    initial = await alice.sync(timeout=0, full_state=True, since=None)
    assert receipts_of(initial.rooms.join[room_id].ephemeral) == [
        (first, "m.read", bob.user_id, "main")
    ]


async def test_receipts_only_move_forward(users):
    alice, bob, room_id = await room_of_two(users)
    first = await send_text(alice, room_id, "one")
    second = await send_text(alice, room_id, "two")
    await bob.update_receipt_marker(room_id, second)
    since = (await alice.sync(timeout=0)).next_batch
    # Older than the current receipt: accepted, and ignored.
    assert isinstance(
        await bob.update_receipt_marker(room_id, first), nio.UpdateReceiptMarkerResponse
    )
    later = await alice.sync(timeout=0, since=since)
    room = later.rooms.join.get(room_id)
    assert receipts_of(room.ephemeral if room else []) == []
    initial = await alice.sync(timeout=0, full_state=True, since=None)
    assert receipts_of(initial.rooms.join[room_id].ephemeral) == [
        (second, "m.read", bob.user_id, "main")
    ]


async def test_threaded_receipts(hs, users):
    alice, bob, room_id = await room_of_two(users)
    root = await send_text(alice, room_id, "root")
    reply = await send_text(
        alice, room_id, "reply", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    )
    plain = await send_text(alice, room_id, "plain")
    since = (await alice.sync(timeout=0)).next_batch

    # The reply and the root are in the thread; the root and the plain
    # message are in the main timeline.
    for event_id, thread in ((reply, root), (root, root), (root, "main"), (plain, "main")):
        resp = await bob.update_receipt_marker(room_id, event_id, thread_id=thread)
        assert isinstance(resp, nio.UpdateReceiptMarkerResponse), (event_id, thread, resp)
    for event_id, thread in ((reply, "main"), (plain, root)):
        status, body = await hs.request(
            "POST",
            f"{V3}/rooms/{room_id}/receipt/m.read/{event_id}",
            token=bob.access_token,
            json={"thread_id": thread},
        )
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), (event_id, thread)

    events, _ = await ephemeral_until(alice, room_id, since, lambda e: len(receipts_of(e)) >= 2)
    assert sorted(receipts_of(events)) == sorted(
        [(reply, "m.read", bob.user_id, root), (plain, "m.read", bob.user_id, "main")]
    )


async def test_receipt_bad_input(hs, users):
    alice, bob, room_id = await room_of_two(users)
    carol = await users("carol")
    event_id = await send_text(alice, room_id, "hello")
    path = f"{V3}/rooms/{room_id}/receipt"
    cases = [
        (bob, f"{path}/m.unknown/{event_id}", {}, 400, "M_INVALID_PARAM"),
        (bob, f"{path}/m.read/{event_id}", {"thread_id": ""}, 400, "M_INVALID_PARAM"),
        (bob, f"{path}/m.read/{event_id}", {"thread_id": 5}, 400, "M_INVALID_PARAM"),
        (bob, f"{path}/m.fully_read/{event_id}", {"thread_id": "main"}, 400, "M_INVALID_PARAM"),
        (bob, f"{path}/m.read/$unknown", {}, 404, "M_NOT_FOUND"),
        (bob, f"{path}/m.read/not-an-event", {}, 400, "M_INVALID_PARAM"),
        (carol, f"{path}/m.read/{event_id}", {}, 403, "M_FORBIDDEN"),
    ]
    for client, url, body, status, errcode in cases:
        got, answer = await hs.request("POST", url, token=client.access_token, json=body)
        assert (got, answer["errcode"]) == (status, errcode), url
    status, body = await hs.request(
        "POST", f"{path}/m.read/{event_id}", token=bob.access_token, data=b"{not json"
    )
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")
    initial = await alice.sync(timeout=0, full_state=True, since=None)
    room = initial.rooms.join.get(room_id)
    assert receipts_of(room.ephemeral if room else []) == []


async def fully_read(hs: Any, client: Any, room_id: str) -> Any:
    status, body = await hs.request(
        "GET",
        f"{V3}/user/{client.user_id}/rooms/{room_id}/account_data/m.fully_read",
        token=client.access_token,
    )
    return body.get("event_id") if status == 200 else status


async def test_read_markers_set_fully_read_and_receipts(hs, users):
    alice, bob, room_id = await room_of_two(users)
    first = await send_text(alice, room_id, "one")
    second = await send_text(alice, room_id, "two")
    third = await send_text(alice, room_id, "three")
    since = (await alice.sync(timeout=0)).next_batch
    assert await fully_read(hs, bob, room_id) == 404

    resp = await bob.room_read_markers(room_id, second, read_event=second)
    assert isinstance(resp, nio.RoomReadMarkersResponse), resp
    assert await fully_read(hs, bob, room_id) == second
    events, _ = await ephemeral_until(alice, room_id, since, receipts_of)
    assert receipts_of(events) == [(second, "m.read", bob.user_id, None)]
    synced = await bob.sync(timeout=0, full_state=True, since=None)
    markers = synced.rooms.join[room_id].account_data
    assert [m.event_id for m in markers if isinstance(m, nio.FullyReadEvent)] == [second]

    # The marker only moves forward; the receipt name m.fully_read moves it too.
    await bob.room_read_markers(room_id, first)
    assert await fully_read(hs, bob, room_id) == second
    status, _ = await hs.request(
        "POST",
        f"{V3}/rooms/{room_id}/receipt/m.fully_read/{third}",
        token=bob.access_token,
        json={},
    )
    assert status == 200
    assert await fully_read(hs, bob, room_id) == third

    for bad, status_code, errcode in (
        ({"m.fully_read": 5}, 400, "M_BAD_JSON"),
        ({"m.read": "$nope"}, 404, "M_NOT_FOUND"),
    ):
        status, body = await hs.request(
            "POST", f"{V3}/rooms/{room_id}/read_markers", token=bob.access_token, json=bad
        )
        assert (status, body["errcode"]) == (status_code, errcode), bad
    assert await fully_read(hs, bob, room_id) == third


async def test_last_read_positions_for_unread_counts(hs, users):
    alice, bob, room_id = await room_of_two(users)
    root = await send_text(alice, room_id, "root")
    reply = await send_text(
        alice, room_id, "reply", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    )
    later = await send_text(alice, room_id, "later")
    await bob.update_receipt_marker(room_id, reply, thread_id=root)
    await bob.update_receipt_marker(room_id, root, receipt_type=ReceiptType.read_private)

    receipts = ReceiptService(
        ReceiptStore(hs.pool),
        StreamPublisher("receipts", StreamIds(hs.pool, "receipts_stream"), Notifier()),
        RoomStore(hs.pool),
        account_data=None,  # type: ignore[arg-type]
        activity=None,  # type: ignore[arg-type]
    )
    orderings = dict(
        await hs.pool.fetch(
            "SELECT event_id, stream_ordering FROM events WHERE event_id = ANY($1)",
            [root, reply, later],
        )
    )
    assert await receipts.last_read_stream(bob.user_id, room_id) == orderings[root]
    assert await receipts.last_read_stream(alice.user_id, room_id) is None
    assert await receipts.thread_read_streams(bob.user_id, [room_id, "!other:localhost"]) == {
        room_id: {"main": orderings[root], root: orderings[reply]}
    }
    await bob.update_receipt_marker(room_id, later, thread_id=None)
    assert await receipts.last_read_streams(bob.user_id, [room_id]) == {room_id: orderings[later]}
