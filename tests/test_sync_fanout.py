"""Woken long polls skip the streams that moved only for others (the
notifier's record of recent moves, homeserver/stream_moves.py), and still
get everything that is theirs: their own to-device messages next to other
users', device list changes of the users they share a room with, and, when
the record does not reach back to their token, whatever the database holds.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from homeserver.stream_moves import RecentMoves

V3 = "/_matrix/client/v3"
_txn = itertools.count()


async def sync(hs: Any, user: dict[str, Any], since: str | None, wait_ms: int = 0) -> dict:
    query = f"?timeout={wait_ms}" + (f"&since={since}" if since else "")
    status, body = await hs.request("GET", f"{V3}/sync{query}", token=user["access_token"])
    assert status == 200, body
    return body


async def parked(hs: Any, user: dict[str, Any], since: str) -> asyncio.Task[dict]:
    """A long poll from `since`, once the server has it waiting."""
    task = asyncio.ensure_future(sync(hs, user, since, wait_ms=20_000))
    watches = hs.server.notifier._by_user
    for _ in range(500):
        if task.done() or any(w.woken for w in watches.get(user["user_id"], ())):
            break
        await asyncio.sleep(0.01)
    assert not task.done(), task.result()
    return task


async def to_device(hs: Any, sender: dict[str, Any], to: dict[str, Any], body: str) -> None:
    messages = {to["user_id"]: {to["device_id"]: {"body": body}}}
    status, resp = await hs.request(
        "PUT",
        f"{V3}/sendToDevice/org.example.ping/t{next(_txn)}",
        token=sender["access_token"],
        json={"messages": messages},
    )
    assert status == 200, resp


def bodies(response: dict[str, Any]) -> list[str]:
    return [e["content"]["body"] for e in response.get("to_device", {}).get("events", [])]


async def room_of(hs: Any, *users: dict[str, Any]) -> str:
    status, body = await hs.request(
        "POST", f"{V3}/createRoom", token=users[0]["access_token"], json={"preset": "public_chat"}
    )
    assert status == 200, body
    for user in users[1:]:
        status, body = await hs.request(
            "POST", f"{V3}/rooms/{body['room_id']}/join", token=user["access_token"], json={}
        )
        assert status == 200, body
    return body["room_id"]


async def say(hs: Any, user: dict[str, Any], room_id: str, text: str) -> None:
    status, body = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.message/m{next(_txn)}",
        token=user["access_token"],
        json={"msgtype": "m.text", "body": text},
    )
    assert status == 200, body


async def test_a_poll_woken_beside_another_users_message_gets_its_own(hs):
    alice, bob, carol = [await hs.register(n) for n in ("alice", "bob", "carol")]
    since_a = (await sync(hs, alice, None))["next_batch"]
    since_c = (await sync(hs, carol, None))["next_batch"]
    poll_a = await parked(hs, alice, since_a)
    poll_c = await parked(hs, carol, since_c)
    await to_device(hs, bob, carol, "for carol")
    got_c = await asyncio.wait_for(poll_c, 10)
    assert bodies(got_c) == ["for carol"]
    # Carol's message did not wake alice, and hers comes in her response.
    assert not poll_a.done()
    await to_device(hs, bob, alice, "for alice")
    got_a = await asyncio.wait_for(poll_a, 10)
    assert bodies(got_a) == ["for alice"]
    # Not acknowledged yet: the same token gets it again; the next one does not.
    assert bodies(await sync(hs, alice, since_a)) == ["for alice"]
    after = await sync(hs, alice, got_a["next_batch"])
    assert bodies(after) == []
    assert bodies(await sync(hs, carol, got_c["next_batch"])) == []


async def test_a_poll_woken_by_its_room_does_not_report_others_news(hs):
    alice, bob, carol = [await hs.register(n) for n in ("alice", "bob", "carol")]
    room_id = await room_of(hs, alice, bob)
    since = (await sync(hs, alice, None))["next_batch"]
    since = (await sync(hs, alice, since))["next_batch"]
    poll = await parked(hs, alice, since)
    # Carol shares no room with alice: her new device and to-device
    # message are not alice's news. Bob's message wakes alice.
    await hs.request(
        "POST",
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "carol"},
            "password": "secret",
        },
    )
    await to_device(hs, bob, carol, "for carol")
    await say(hs, bob, room_id, "hello")
    got = await asyncio.wait_for(poll, 10)
    timeline = got["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["content"].get("body") for e in timeline] == ["hello"]
    assert bodies(got) == []
    assert got["device_lists"]["changed"] == []
    # A device of bob's (who shares the room) wakes alice with the change.
    poll = await parked(hs, alice, got["next_batch"])
    status, body = await hs.request(
        "POST",
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "bob"},
            "password": "secret",
        },
    )
    assert status == 200, body
    got = await asyncio.wait_for(poll, 10)
    assert got["device_lists"]["changed"] == [bob["user_id"]]


async def test_a_token_older_than_the_record_reads_the_database(hs):
    """The record of recent moves starts afresh (as it does after a restart,
    or when a token is older than the moves it keeps): a woken poll whose
    token it does not reach asks the database, and misses nothing."""
    alice, bob = [await hs.register(n) for n in ("alice", "bob")]
    room_id = await room_of(hs, alice, bob)
    since = (await sync(hs, alice, None))["next_batch"]
    since = (await sync(hs, alice, since))["next_batch"]
    poll = await parked(hs, alice, since)
    hs.server.notifier.recent = RecentMoves(max_moves=2)
    # The first move the new record sees is the one it starts after.
    await to_device(hs, bob, alice, "before the record")
    got = await asyncio.wait_for(poll, 10)
    assert bodies(got) == ["before the record"]

    poll = await parked(hs, alice, got["next_batch"])
    hs.server.notifier.recent = RecentMoves(max_moves=2)
    status, body = await hs.request(
        "POST",
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "bob"},
            "password": "secret",
        },
    )
    assert status == 200, body
    got = await asyncio.wait_for(poll, 10)
    assert got["device_lists"]["changed"] == [bob["user_id"]]

    # Moves for others push alice's message out of a two-move record, and a
    # message in the room wakes her: her token is older than the record.
    since = got["next_batch"]
    await to_device(hs, bob, alice, "pushed out")
    for i in range(3):
        await to_device(hs, alice, bob, f"for bob {i}")
    got = await sync(hs, alice, since)
    assert bodies(got) == ["pushed out"]
    poll = await parked(hs, alice, got["next_batch"])
    for i in range(3):
        await to_device(hs, alice, bob, f"again for bob {i}")
    await say(hs, bob, room_id, "wake up")
    got = await asyncio.wait_for(poll, 10)
    assert bodies(got) == []
    assert [e["content"]["body"] for e in got["rooms"]["join"][room_id]["timeline"]["events"]] == [
        "wake up"
    ]


async def test_polls_woken_by_one_message_share_its_read_but_not_their_parts(hs):
    """The room's new events are read once for every poll they wake; the
    sender's transaction id, ignored senders and redactions stay per user."""
    alice, bob, carol = [await hs.register(n) for n in ("alice", "bob", "carol")]
    room_id = await room_of(hs, alice, bob, carol)
    status, body = await hs.request(
        "PUT",
        f"{V3}/user/{carol['user_id']}/account_data/m.ignored_user_list",
        token=carol["access_token"],
        json={"ignored_users": {alice["user_id"]: {}}},
    )
    assert status == 200, body
    tokens = {u["user_id"]: (await sync(hs, u, None))["next_batch"] for u in (alice, bob, carol)}
    # Past everyone's presence coming online.
    for _ in range(2):
        for user in (alice, bob, carol):
            tokens[user["user_id"]] = (await sync(hs, user, tokens[user["user_id"]]))["next_batch"]
    polls = {u["user_id"]: await parked(hs, u, tokens[u["user_id"]]) for u in (alice, bob)}
    ignoring = await parked(hs, carol, tokens[carol["user_id"]])
    status, body = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.message/txn-shared",
        token=alice["access_token"],
        json={"msgtype": "m.text", "body": "to all"},
    )
    assert status == 200, body
    message_id = body["event_id"]
    got = {u: await asyncio.wait_for(p, 10) for u, p in polls.items()}

    def timeline(response: dict[str, Any]) -> list[dict[str, Any]]:
        return response["rooms"]["join"][room_id]["timeline"]["events"]

    [mine] = timeline(got[alice["user_id"]])
    [theirs] = timeline(got[bob["user_id"]])
    assert mine["event_id"] == theirs["event_id"] == message_id
    assert mine["unsigned"]["transaction_id"] == "txn-shared"
    assert "transaction_id" not in theirs["unsigned"]
    assert "room_id" not in mine
    # Carol ignores alice: the message is no news for her.
    assert not ignoring.done()
    ignoring.cancel()

    # Redacted after bob's poll read it: a sync over the same range now
    # shows it redacted.
    status, body = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/redact/{message_id}/r1",
        token=alice["access_token"],
        json={},
    )
    assert status == 200, body
    again = await sync(hs, bob, tokens[bob["user_id"]])
    shown = {e["event_id"]: e for e in timeline(again)}
    assert shown[message_id]["content"] == {}
    assert shown[message_id]["unsigned"]["redacted_because"]["event_id"] == body["event_id"]


async def test_key_counts_follow_uploads_and_claims(hs):
    """The counts a device's polls carry are kept between them, and are
    read again once its keys are uploaded or claimed."""
    alice, bob = [await hs.register(n) for n in ("alice", "bob")]
    room_id = await room_of(hs, alice, bob)
    keys = {f"curve25519:k{i}": f"key{i}" for i in range(3)}
    status, body = await hs.request(
        "POST", f"{V3}/keys/upload", token=alice["access_token"], json={"one_time_keys": keys}
    )
    assert status == 200, body
    since = (await sync(hs, alice, None))["next_batch"]
    got = await sync(hs, alice, since)
    assert got["device_one_time_keys_count"] == {"curve25519": 3, "signed_curve25519": 0}
    poll = await parked(hs, alice, got["next_batch"])
    status, body = await hs.request(
        "POST",
        f"{V3}/keys/claim",
        token=bob["access_token"],
        json={"one_time_keys": {alice["user_id"]: {alice["device_id"]: "curve25519"}}},
    )
    assert status == 200, body
    assert body["one_time_keys"][alice["user_id"]][alice["device_id"]]
    await say(hs, bob, room_id, "claimed one")
    got = await asyncio.wait_for(poll, 10)
    assert got["device_one_time_keys_count"] == {"curve25519": 2, "signed_curve25519": 0}
    more = {"curve25519:k9": "key9"}
    status, body = await hs.request(
        "POST", f"{V3}/keys/upload", token=alice["access_token"], json={"one_time_keys": more}
    )
    assert status == 200, body
    got = await sync(hs, alice, got["next_batch"])
    assert got["device_one_time_keys_count"] == {"curve25519": 3, "signed_curve25519": 0}
