"""Notifications of an event as one common row plus per-user exceptions
(issue 24): what users see in /sync counts and GET /notifications stays what
one row per member gave, while a plain message writes one row."""

from __future__ import annotations

import json
from typing import Any

import nio

from tests.test_pushers import add_pusher, notifications, running_gateway
from tests.test_unread_counts import counts, room_with, send_text, users

__all__ = ["users"]  # the fixture

V3 = "/_matrix/client/v3"


async def rows_of(hs: Any, event_id: str) -> tuple[int, list[tuple[str, bool]]]:
    """(common rows, [(user, notify)] of per-user rows) written for an event."""
    common = await hs.pool.fetchval(
        "SELECT count(*) FROM event_push_common WHERE event_id = $1", event_id
    )
    own = await hs.pool.fetch(
        """SELECT user_id, notify FROM event_push_notifications
           WHERE event_id = $1 ORDER BY user_id""",
        event_id,
    )
    return common, [(r["user_id"], r["notify"]) for r in own]


async def test_late_joiner_and_sender_are_not_counted(hs, users):
    alice = await users("alice")
    bob = await users("bob")
    room_id = await room_with(alice, bob)
    first = await send_text(alice, room_id, "before carol")
    await send_text(alice, room_id, "still before carol")
    assert await rows_of(hs, first) == (1, [])
    assert await counts(hs, bob, room_id) == (2, 0)
    assert await counts(hs, alice, room_id) == (0, 0)

    carol = await users("carol")
    invited = await alice.room_invite(room_id, carol.user_id)
    assert isinstance(invited, nio.RoomInviteResponse), invited
    assert isinstance(await carol.join(room_id), nio.JoinResponse)
    assert await counts(hs, carol, room_id) == (0, 0)
    after = await send_text(alice, room_id, "welcome aboard")
    assert await counts(hs, carol, room_id) == (1, 0)
    assert await counts(hs, bob, room_id) == (3, 0)
    listed = (await notifications(hs, carol))["notifications"]
    assert [n["event"]["event_id"] for n in listed][0] == after
    assert first not in [n["event"]["event_id"] for n in listed]


async def test_muted_member_sees_nothing_where_others_count(hs, users):
    alice = await users("alice")
    bob = await users("bob")
    carol = await users("carol")
    room_id = await room_with(alice, bob, carol)
    status, body = await hs.request(
        "PUT",
        f"{V3}/pushrules/global/room/{room_id}",
        token=carol.access_token,
        json={"actions": []},
    )
    assert status == 200, body
    event_id = await send_text(alice, room_id, "hello all")
    # One common row (bob's); carol's own row says she is not notified.
    assert await rows_of(hs, event_id) == (1, [(carol.user_id, False)])
    assert await counts(hs, carol, room_id) == (0, 0)
    assert await counts(hs, bob, room_id) == (1, 0)
    assert event_id not in [
        n["event"]["event_id"] for n in (await notifications(hs, carol))["notifications"]
    ]


async def test_mentioned_member_highlights_alone(hs, users):
    alice = await users("alice")
    bob = await users("bob")
    carol = await users("carol")
    room_id = await room_with(alice, bob, carol)
    event_id = await send_text(
        alice, room_id, "look", **{"m.mentions": {"user_ids": [bob.user_id, "@x:elsewhere"]}}
    )
    assert await rows_of(hs, event_id) == (1, [(bob.user_id, True)])
    assert await counts(hs, bob, room_id) == (1, 1)
    assert await counts(hs, carol, room_id) == (1, 0)
    highlights = (await notifications(hs, bob, "?only=highlight"))["notifications"]
    assert [n["event"]["event_id"] for n in highlights] == [event_id]
    assert (await notifications(hs, carol, "?only=highlight"))["notifications"] == []


async def test_display_name_and_localpart_name_only_their_member(hs, users):
    alice = await users("alice")
    bob = await users("bob", "Captain Ünïcode")
    carol = await users("carol", "Carol")
    dave = await users("dave")
    room_id = await room_with(alice, bob, carol, dave)
    named = await send_text(alice, room_id, "where is CAPTAIN ÜNÏCODE?")
    assert await counts(hs, bob, room_id) == (1, 1)
    assert await counts(hs, carol, room_id) == (1, 0)
    assert await counts(hs, dave, room_id) == (1, 0)
    assert (await rows_of(hs, named))[1] == [(bob.user_id, True)]
    # The localpart of dave (contains_user_name), and a name only inside a word.
    await send_text(alice, room_id, "ask dave, not the Carolers")
    assert await counts(hs, dave, room_id) == (2, 1)
    assert await counts(hs, carol, room_id) == (2, 0)
    assert await counts(hs, bob, room_id) == (2, 1)


async def test_ignoring_the_sender_counts_as_before(hs, users):
    """Ignoring a user hides their messages from the timeline; it never
    changed which notifications are written here (Synapse skips ignorers),
    and the common row keeps that: the ignorer counts like anyone else."""
    alice = await users("alice")
    bob = await users("bob")
    carol = await users("carol")
    room_id = await room_with(alice, bob, carol)
    status, body = await hs.request(
        "PUT",
        f"{V3}/user/{bob.user_id}/account_data/m.ignored_user_list",
        token=bob.access_token,
        json={"ignored_users": {alice.user_id: {}}},
    )
    assert status == 200, body
    await send_text(alice, room_id, "hi")
    assert await counts(hs, bob, room_id) == await counts(hs, carol, room_id) == (1, 0)


async def test_notifications_merge_both_sources_across_a_leave(hs, users):
    alice = await users("alice")
    bob = await users("bob")
    room_id = await room_with(alice, bob)
    other = await room_with(alice, bob)
    sent = [
        await send_text(alice, room_id, "one"),
        await send_text(alice, other, "two", **{"m.mentions": {"user_ids": [bob.user_id]}}),
        await send_text(alice, room_id, "three"),
        await send_text(alice, other, "four"),
    ]
    assert (await rows_of(hs, sent[1]))[1] == [(bob.user_id, True)]
    listed = (await notifications(hs, bob))["notifications"]
    ids = [n["event"]["event_id"] for n in listed]
    assert ids[:4] == sent[::-1]
    assert [n["room_id"] for n in listed[:4]] == [other, room_id, other, room_id]
    # Rooms of two: .m.rule.room_one_to_one, but for the mention.
    sound = {"set_tweak": "sound", "value": "default"}
    assert [n["actions"] for n in listed[:4]] == [
        ["notify", sound],
        ["notify", sound],
        ["notify", sound, {"set_tweak": "highlight"}],
        ["notify", sound],
    ]
    paged: list[str] = []
    page = await notifications(hs, bob, "?limit=2")
    paged += [n["event"]["event_id"] for n in page["notifications"]]
    while "next_token" in page:
        page = await notifications(hs, bob, f"?limit=2&from={page['next_token']}")
        paged += [n["event"]["event_id"] for n in page["notifications"]]
    assert paged == ids

    # Leaving keeps what was listed; what is sent after is not for bob.
    assert isinstance(await bob.room_leave(room_id), nio.RoomLeaveResponse)
    await send_text(alice, room_id, "after bob left")
    assert [n["event"]["event_id"] for n in (await notifications(hs, bob))["notifications"]] == ids
    # Back in: only what is new counts.
    invited = await alice.room_invite(room_id, bob.user_id)
    assert isinstance(invited, nio.RoomInviteResponse), invited
    assert isinstance(await bob.join(room_id), nio.JoinResponse)
    back = await send_text(alice, room_id, "welcome back")
    again = [n["event"]["event_id"] for n in (await notifications(hs, bob))["notifications"]]
    assert again[0] == back
    assert again[-len(ids) :] == ids
    assert await counts(hs, bob, room_id) == (1, 0)


async def test_plain_message_in_a_room_of_sixty_writes_one_row(hs):
    owner = await hs.register("owner")
    token = owner["access_token"]
    status, created = await hs.request(
        "POST", f"{V3}/createRoom", token=token, json={"preset": "public_chat"}
    )
    assert status == 200, created
    room_id = created["room_id"]
    members = []
    for i in range(59):
        member = await hs.register(f"member{i}")
        status, body = await hs.request(
            "POST", f"{V3}/join/{room_id}", token=member["access_token"], json={}
        )
        assert status == 200, body
        members.append(member)
    status, body = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.message/t1",
        token=token,
        json={"msgtype": "m.text", "body": "hello everyone"},
    )
    assert status == 200, body
    assert await rows_of(hs, body["event_id"]) == (1, [])
    # Every member counts it all the same.
    for member in (members[0], members[-1]):
        status, synced = await hs.request(
            "GET",
            f"{V3}/sync?filter=" + json.dumps({"room": {"timeline": {"limit": 1}}}),
            token=member["access_token"],
        )
        assert status == 200, synced
        assert synced["rooms"]["join"][room_id]["unread_notifications"] == {
            "notification_count": 1,
            "highlight_count": 0,
        }


async def test_members_with_a_pusher_always_get_a_row_of_their_own(hs, users):
    """The pushers' sender reads only the per-user rows (push/stream.py): a
    member with a pusher is never folded into the common row, whether the
    pusher came before the room's facts were cached or before the join."""
    alice = await users("alice")
    bob = await users("bob")
    carol = await users("carol")
    dave = await users("dave")
    room_id = await room_with(alice, bob, carol)
    first = await send_text(alice, room_id, "facts cached")
    assert await rows_of(hs, first) == (1, [])
    async with running_gateway() as gateway:
        await add_pusher(hs, bob, "bob-key", gateway.url)
        await add_pusher(hs, dave, "dave-key", gateway.url)
        invited = await alice.room_invite(room_id, dave.user_id)
        assert isinstance(invited, nio.RoomInviteResponse), invited
        assert isinstance(await dave.join(room_id), nio.JoinResponse)
        event_id = await send_text(alice, room_id, "hello all")
        # Carol is counted by the common row; Bob and Dave have their own.
        assert await rows_of(hs, event_id) == (1, [(bob.user_id, True), (dave.user_id, True)])
        await gateway.wait_for("bob-key", event_id)
        await gateway.wait_for("dave-key", event_id)
