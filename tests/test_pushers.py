"""Pushers, pushes to a push gateway, and GET /notifications.

Users drive matrix-nio (rooms, messages, receipts) and raw HTTP where nio has
no call (pushers, /notifications). A small push gateway on loopback records
every /notify request it receives; tests wait for pushes with a bounded poll.
Absence is shown by a later push on the same path arriving alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import nio
import pytest
from aiohttp import web

V3 = "/_matrix/client/v3"
APP_ID = "org.example.chat.android"
NOTIFY = "/_matrix/push/v1/notify"


@attrs.define
class Gateway:
    """A push gateway that records what it receives and answers as told."""

    url: str = ""
    received: list[dict[str, Any]] = attrs.field(factory=list)
    # Pushkeys to list as rejected; how many next requests get a 500.
    reject: set[str] = attrs.field(factory=set)
    failures: int = 0

    async def notify(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        if self.failures:
            self.failures -= 1
            return web.json_response({"error": "try later"}, status=500)
        keys = [d["pushkey"] for d in body["notification"]["devices"]]
        return web.json_response({"rejected": [k for k in keys if k in self.reject]})

    def pushes(self, pushkey: str) -> list[dict[str, Any]]:
        """The notifications sent to a pushkey, in the order received."""
        return [
            body["notification"]
            for body in self.received
            if body["notification"]["devices"][0]["pushkey"] == pushkey
        ]

    async def wait_for(self, pushkey: str, event_id: str) -> dict[str, Any]:
        """The first push of `event_id` to `pushkey`, waiting for it (bounded)."""
        for _ in range(500):
            found = [p for p in self.pushes(pushkey) if p.get("event_id") == event_id]
            if found:
                return found[0]
            await asyncio.sleep(0.02)
        raise AssertionError(f"no push of {event_id} to {pushkey}: {self.received}")


@contextlib.asynccontextmanager
async def running_gateway() -> AsyncIterator[Gateway]:
    """A Gateway listening on loopback (its `url` set) for the block's duration."""
    recorder = Gateway()
    app = web.Application()
    app.router.add_post(NOTIFY, recorder.notify)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    recorder.url = f"http://127.0.0.1:{port}{NOTIFY}"
    try:
        yield recorder
    finally:
        await runner.cleanup()


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with running_gateway() as recorder:
        yield recorder


@pytest.fixture
async def users(hs: Any) -> AsyncIterator[Callable[..., Any]]:
    """Registers a user (with a display name, if given); returns a logged-in nio client."""
    clients: list[nio.AsyncClient] = []

    async def make(name: str, display_name: str | None = None, server: Any = None) -> Any:
        server = server or hs
        body = await server.register(name)
        client = nio.AsyncClient(server.url, body["user_id"])
        client.restore_login(body["user_id"], body["device_id"], body["access_token"])
        clients.append(client)
        if display_name is not None:
            resp = await client.set_displayname(display_name)
            assert isinstance(resp, nio.ProfileSetDisplayNameResponse), resp
        return client

    yield make
    for client in clients:
        await client.close()


async def room_with(owner: Any, *others: Any, name: str | None = None) -> str:
    created = await owner.room_create(name=name, invite=[o.user_id for o in others])
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


def pusher_body(pushkey: str, url: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "http",
        "app_id": APP_ID,
        "pushkey": pushkey,
        "app_display_name": "Example Chat",
        "device_display_name": "Phone",
        "lang": "en-GB",
        "data": {"url": url},
    }
    body.update(fields)
    return body


async def set_pusher(hs: Any, client: Any, body: dict[str, Any]) -> tuple[int, Any]:
    return await hs.request("POST", f"{V3}/pushers/set", token=client.access_token, json=body)


async def add_pusher(hs: Any, client: Any, pushkey: str, url: str, **fields: Any) -> None:
    status, body = await set_pusher(hs, client, pusher_body(pushkey, url, **fields))
    assert status == 200, body


async def pushers_of(hs: Any, client: Any) -> list[dict[str, Any]]:
    status, body = await hs.request("GET", f"{V3}/pushers", token=client.access_token)
    assert status == 200, body
    return body["pushers"]


async def notifications(hs: Any, client: Any, query: str = "") -> dict[str, Any]:
    status, body = await hs.request("GET", f"{V3}/notifications{query}", token=client.access_token)
    assert status == 200, body
    return body


# --- managing pushers -----------------------------------------------------------


async def test_set_list_update_and_delete_pushers(hs, users):
    alice = await users("alice")
    assert await pushers_of(hs, alice) == []
    url = "https://push.example.org" + NOTIFY
    data = {"url": url, "format": "event_id_only", "brand": "blue"}
    await add_pusher(hs, alice, "key-1", url, data=data, profile_tag="work")
    expected = {
        "pushkey": "key-1",
        "kind": "http",
        "app_id": APP_ID,
        "app_display_name": "Example Chat",
        "device_display_name": "Phone",
        "profile_tag": "work",
        "lang": "en-GB",
        "data": data,
    }
    assert await pushers_of(hs, alice) == [expected]
    # The same app id and pushkey again updates that pusher.
    await add_pusher(hs, alice, "key-1", url, device_display_name="Tablet")
    updated = {**expected, "device_display_name": "Tablet", "data": {"url": url}}
    del updated["profile_tag"]
    assert await pushers_of(hs, alice) == [updated]
    await add_pusher(hs, alice, "key-2", url)
    assert [p["pushkey"] for p in await pushers_of(hs, alice)] == ["key-1", "key-2"]
    # kind null deletes; deleting what is not there is no error.
    for _ in range(2):
        status, body = await set_pusher(
            hs, alice, {"kind": None, "app_id": APP_ID, "pushkey": "key-1"}
        )
        assert (status, body) == (200, {})
    assert [p["pushkey"] for p in await pushers_of(hs, alice)] == ["key-2"]


@pytest.mark.parametrize(
    ("change", "errcode"),
    [
        ({"lang": None}, "M_MISSING_PARAM"),
        ({"data": None}, "M_MISSING_PARAM"),
        ({"pushkey": None}, "M_MISSING_PARAM"),
        ({"kind": None, "app_id": None}, "M_MISSING_PARAM"),
        ({"data": {"format": "event_id_only"}}, "M_MISSING_PARAM"),
        ({"data": {"url": "https://push.example.org/notify"}}, "M_INVALID_PARAM"),
        ({"data": {"url": "ftp://push.example.org" + NOTIFY}}, "M_INVALID_PARAM"),
        ({"data": {"url": NOTIFY}}, "M_INVALID_PARAM"),
        ({"data": {"url": 7}}, "M_INVALID_PARAM"),
        ({"data": "https://push.example.org" + NOTIFY}, "M_INVALID_PARAM"),
        ({"kind": "email", "app_id": "m.email", "pushkey": "a@example.org"}, "M_INVALID_PARAM"),
        ({"kind": "carrier-pigeon"}, "M_INVALID_PARAM"),
        ({"lang": 44}, "M_INVALID_PARAM"),
        ({"append": "yes"}, "M_INVALID_PARAM"),
        ({"pushkey": "k" * 513}, "M_INVALID_PARAM"),
        ({"app_id": "a" * 65}, "M_INVALID_PARAM"),
    ],
)
async def test_bad_pusher_requests_change_nothing(hs, users, change, errcode):
    alice = await users("alice")
    body = pusher_body("key-1", "https://push.example.org" + NOTIFY)
    for key, value in change.items():
        if value is None and key != "kind":
            del body[key]
        else:
            body[key] = value
    status, answer = await set_pusher(hs, alice, body)
    assert (status, answer["errcode"]) == (400, errcode), answer
    assert await pushers_of(hs, alice) == []


async def test_pusher_endpoints_need_a_token_and_json(hs, users):
    alice = await users("alice")
    status, body = await hs.request("GET", f"{V3}/pushers")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await hs.request(
        "POST", f"{V3}/pushers/set", token=alice.access_token, data=b"{not json"
    )
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")
    assert await pushers_of(hs, alice) == []


async def test_append_false_takes_the_pushkey_from_other_users(hs, users):
    alice, bob, carol = await users("alice"), await users("bob"), await users("carol")
    url = "https://push.example.org" + NOTIFY
    await add_pusher(hs, alice, "shared", url)
    await add_pusher(hs, bob, "shared", url, append=True)
    assert len(await pushers_of(hs, alice)) == len(await pushers_of(hs, bob)) == 1
    await add_pusher(hs, carol, "shared", url)
    assert await pushers_of(hs, alice) == []
    assert await pushers_of(hs, bob) == []
    assert [p["pushkey"] for p in await pushers_of(hs, carol)] == ["shared"]


async def test_pusher_goes_with_its_device(hs, users):
    alice = await users("alice")
    status, login = await hs.request(
        "POST",
        f"{V3}/login",
        json={"type": "m.login.password", "user": "alice", "password": "secret"},
    )
    assert status == 200, login
    phone = nio.AsyncClient(hs.url, alice.user_id)
    phone.restore_login(alice.user_id, login["device_id"], login["access_token"])
    url = "https://push.example.org" + NOTIFY
    await add_pusher(hs, phone, "phone-key", url)
    await add_pusher(hs, alice, "laptop-key", url)
    assert len(await pushers_of(hs, alice)) == 2
    assert isinstance(await phone.logout(), nio.LogoutResponse)
    await phone.close()
    assert [p["pushkey"] for p in await pushers_of(hs, alice)] == ["laptop-key"]


# --- pushes -----------------------------------------------------------------------


async def test_mention_pushes_once_with_the_full_payload(hs, users, gateway):
    alice = await users("alice", "Alice")
    bob = await users("bob", "Bob")
    carol = await users("carol", "Carol")
    room_id = await room_with(alice, bob, carol, name="Team")
    before_s = int(time.time())
    data = {"url": gateway.url, "app_flavour": "beta"}
    await add_pusher(hs, bob, "bob-key", gateway.url, data=data)
    after_s = int(time.time())
    await add_pusher(hs, carol, "carol-key", gateway.url)
    await add_pusher(hs, alice, "alice-key", gateway.url)
    mentions = {"m.mentions": {"user_ids": [bob.user_id]}}
    mention = await send_text(alice, room_id, "Bob, lunch?", **mentions)

    pushed = await gateway.wait_for("bob-key", mention)
    device = pushed["devices"][0]
    assert before_s <= device.pop("pushkey_ts") <= after_s
    assert pushed == {
        "id": mention,
        "event_id": mention,
        "room_id": room_id,
        "type": "m.room.message",
        "sender": alice.user_id,
        "sender_display_name": "Alice",
        "room_name": "Team",
        "prio": "high",
        "content": {"msgtype": "m.text", "body": "Bob, lunch?", **mentions},
        "counts": {"unread": 1},
        "devices": [
            {
                "app_id": APP_ID,
                "pushkey": "bob-key",
                "data": {"app_flavour": "beta"},
                "tweaks": {"sound": "default", "highlight": True},
            }
        ],
    }
    # Carol is not mentioned: an ordinary message in a group, pushed quietly.
    quiet = await gateway.wait_for("carol-key", mention)
    assert quiet["prio"] == "low"
    assert quiet["counts"] == {"unread": 1}
    assert "tweaks" not in quiet["devices"][0]
    assert quiet["devices"][0]["data"] == {}

    # A later message reaches bob after the mention: it was pushed once.
    later = await send_text(alice, room_id, "anyone else?")
    follow_up = await gateway.wait_for("bob-key", later)
    assert follow_up["prio"] == "low"
    assert follow_up["counts"] == {"unread": 1}
    assert [p["event_id"] for p in gateway.pushes("bob-key")] == [mention, later]
    # The sender is never pushed their own messages.
    reply = await send_text(bob, room_id, "yes!")
    await gateway.wait_for("alice-key", reply)
    assert [p["event_id"] for p in gateway.pushes("alice-key")] == [reply]


async def test_notifications_list_with_highlights_pages_and_read_marks(hs, users):
    alice = await users("alice", "Alice")
    bob = await users("bob", "Bob")
    carol = await users("carol")
    room_id = await room_with(alice, bob, carol, name="Team")
    mention = await send_text(alice, room_id, "ping Bob")
    plain = await send_text(alice, room_id, "plain words")
    own = await send_text(bob, room_id, "my own message")

    listed = await notifications(hs, bob)
    assert "next_token" not in listed
    newest, oldest, invite = listed["notifications"]
    assert [newest["event"]["event_id"], oldest["event"]["event_id"]] == [plain, mention]
    assert newest["actions"] == ["notify"]
    assert {"set_tweak": "highlight"} in oldest["actions"]
    assert oldest["room_id"] == room_id
    assert oldest["read"] is False
    assert oldest["profile_tag"] is None  # push rules here have no profile tag
    assert isinstance(oldest["ts"], int)
    assert oldest["event"]["content"]["body"] == "ping Bob"
    assert oldest["event"]["sender"] == alice.user_id
    assert "room_id" not in oldest["event"]
    # Being invited notified bob too.
    assert invite["event"]["type"] == "m.room.member"
    assert invite["event"]["state_key"] == bob.user_id
    assert invite["event"]["content"]["membership"] == "invite"

    highlights = await notifications(hs, bob, "?only=highlight")
    assert [n["event"]["event_id"] for n in highlights["notifications"]] == [mention]
    assert "next_token" not in highlights

    page = await notifications(hs, bob, "?limit=1")
    paged = [n["event"]["event_id"] for n in page["notifications"]]
    while "next_token" in page:
        page = await notifications(hs, bob, f"?limit=1&from={page['next_token']}")
        paged += [n["event"]["event_id"] for n in page["notifications"]]
    assert paged == [n["event"]["event_id"] for n in listed["notifications"]]

    receipt = await bob.update_receipt_marker(room_id, mention)
    assert isinstance(receipt, nio.UpdateReceiptMarkerResponse), receipt
    marks = [n["read"] for n in (await notifications(hs, bob))["notifications"]]
    assert marks == [False, True, True]
    # Bob's own message is in alice's list, not his.
    theirs = (await notifications(hs, alice))["notifications"]
    assert [n["event"]["event_id"] for n in theirs] == [own]

    for query in ("?from=abc", "?limit=-1", "?limit=many"):
        status, body = await hs.request("GET", f"{V3}/notifications{query}", token=bob.access_token)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), query


async def test_one_to_one_messages_push_and_count_rooms(hs, users, gateway):
    alice = await users("alice", "Alice")
    bob = await users("bob")
    first_room = await room_with(alice, bob)
    second_room = await room_with(alice, bob)
    await add_pusher(hs, bob, "bob-key", gateway.url)

    hello = await send_text(alice, first_room, "hello")
    pushed = await gateway.wait_for("bob-key", hello)
    assert pushed["prio"] == "high"
    assert pushed["devices"][0]["tweaks"] == {"sound": "default"}
    assert pushed["sender_display_name"] == "Alice"
    # A room with one other member has no name: the sender's name says it.
    assert "room_name" not in pushed
    assert pushed["counts"] == {"unread": 1}
    # The badge counts rooms with unread notifications, not messages.
    again = await send_text(alice, first_room, "are you there?")
    assert (await gateway.wait_for("bob-key", again))["counts"] == {"unread": 1}
    elsewhere = await send_text(alice, second_room, "other topic")
    assert (await gateway.wait_for("bob-key", elsewhere))["counts"] == {"unread": 2}
    # Reading a room takes it out of the badge.
    receipt = await bob.update_receipt_marker(first_room, again)
    assert isinstance(receipt, nio.UpdateReceiptMarkerResponse), receipt
    last = await send_text(alice, second_room, "still there?")
    assert (await gateway.wait_for("bob-key", last))["counts"] == {"unread": 1}


async def badge_pushes(gateway: Gateway, pushkey: str, count: int) -> list[dict[str, Any]]:
    """The first `count` badge-only pushes (no event) to `pushkey`, waiting for them."""
    for _ in range(500):
        found = [p for p in gateway.pushes(pushkey) if p.get("id") == "" and "event_id" not in p]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} badge pushes to {pushkey}: {gateway.received}")


async def test_reading_pushes_the_new_badge(hs, users, gateway):
    alice = await users("alice", "Alice")
    bob = await users("bob")
    first_room = await room_with(alice, bob)
    second_room = await room_with(alice, bob)
    await add_pusher(hs, bob, "bob-key", gateway.url)
    first = await send_text(alice, first_room, "one")
    await gateway.wait_for("bob-key", first)
    second = await send_text(alice, second_room, "two")
    assert (await gateway.wait_for("bob-key", second))["counts"] == {"unread": 2}

    # A public read receipt, then a private one: each sends the lower badge.
    receipt = await bob.update_receipt_marker(first_room, first)
    assert isinstance(receipt, nio.UpdateReceiptMarkerResponse), receipt
    (badge,) = await badge_pushes(gateway, "bob-key", 1)
    assert badge["counts"] == {"unread": 1}
    assert badge["type"] is None and badge["sender"] == ""
    assert badge["devices"][0]["pushkey"] == "bob-key"
    status, _ = await hs.request(
        "POST",
        f"/_matrix/client/v3/rooms/{second_room}/receipt/m.read.private/{second}",
        token=bob.access_token,
        json={},
    )
    assert status == 200
    badges = await badge_pushes(gateway, "bob-key", 2)
    assert badges[1]["counts"] == {"unread": 0}


async def test_group_room_without_a_name_is_named_by_members(hs, users, gateway):
    alice = await users("alice", "Alice")
    bob = await users("bob", "Bob")
    carol = await users("carol", "Carol")
    dan = await users("dan")
    room_id = await room_with(alice, bob, carol, dan)
    await add_pusher(hs, bob, "bob-key", gateway.url)
    event_id = await send_text(carol, room_id, "hi all")
    pushed = await gateway.wait_for("bob-key", event_id)
    # Bob's view: the three others, in the order they came, by display name.
    assert pushed["room_name"] == "Alice and 2 others"
    assert pushed["sender_display_name"] == "Carol"


@pytest.mark.parametrize("actions", [[], ["dont_notify"]])
async def test_muted_room_pushes_nothing(hs, users, gateway, actions):
    alice = await users("alice")
    bob = await users("bob")
    muted = await room_with(alice, bob)
    loud = await room_with(alice, bob)
    status, body = await hs.request(
        "PUT",
        f"{V3}/pushrules/global/room/{muted}",
        token=bob.access_token,
        json={"actions": actions},
    )
    assert status == 200, body
    await add_pusher(hs, bob, "bob-key", gateway.url)
    await send_text(alice, muted, "shh")
    heard = await send_text(alice, loud, "hey")
    await gateway.wait_for("bob-key", heard)
    assert [p["event_id"] for p in gateway.pushes("bob-key")] == [heard]


async def test_event_id_only_pushes_ids_and_counts(hs, users, gateway):
    alice = await users("alice")
    bob = await users("bob")
    room_id = await room_with(alice, bob)
    data = {"url": gateway.url, "format": "event_id_only"}
    await add_pusher(hs, bob, "bob-key", gateway.url, data=data)
    event_id = await send_text(alice, room_id, "secret plans")
    pushed = await gateway.wait_for("bob-key", event_id)
    assert isinstance(pushed["devices"][0].pop("pushkey_ts"), int)
    assert pushed == {
        "event_id": event_id,
        "room_id": room_id,
        "prio": "high",
        "counts": {"unread": 1},
        "devices": [{"app_id": APP_ID, "pushkey": "bob-key", "data": {"format": "event_id_only"}}],
    }


async def test_rejected_pushkey_loses_its_pusher(hs, users, gateway):
    alice = await users("alice")
    bob = await users("bob")
    room_id = await room_with(alice, bob)
    await add_pusher(hs, bob, "stale-key", gateway.url)
    await add_pusher(hs, bob, "good-key", gateway.url)
    gateway.reject.add("stale-key")
    first = await send_text(alice, room_id, "one")
    await gateway.wait_for("stale-key", first)
    await gateway.wait_for("good-key", first)
    for _ in range(500):
        if len(await pushers_of(hs, bob)) == 1:
            break
        await asyncio.sleep(0.02)
    assert [p["pushkey"] for p in await pushers_of(hs, bob)] == ["good-key"]
    second = await send_text(alice, room_id, "two")
    await gateway.wait_for("good-key", second)
    assert [p["event_id"] for p in gateway.pushes("stale-key")] == [first]


async def test_failed_push_is_retried(hs, users, gateway):
    alice = await users("alice")
    bob = await users("bob")
    room_id = await room_with(alice, bob)
    await add_pusher(hs, bob, "bob-key", gateway.url)
    gateway.failures = 1
    event_id = await send_text(alice, room_id, "knock knock")
    for _ in range(500):
        if len(gateway.pushes("bob-key")) == 2:
            break
        await asyncio.sleep(0.02)
    first, retry = gateway.pushes("bob-key")
    assert first == retry
    assert first["event_id"] == event_id


async def test_no_push_while_syncing_and_no_content_when_configured(server_factory, gateway):
    hs = await server_factory(push={"suppress_when_active": True, "include_content": False})
    alice_body, bob_body = await hs.register("alice"), await hs.register("bob")
    alice = nio.AsyncClient(hs.url, alice_body["user_id"])
    alice.restore_login(alice_body["user_id"], alice_body["device_id"], alice_body["access_token"])
    bob = nio.AsyncClient(hs.url, bob_body["user_id"])
    bob.restore_login(bob_body["user_id"], bob_body["device_id"], bob_body["access_token"])
    try:
        room_id = await room_with(alice, bob)
        await add_pusher(hs, bob, "bob-key", gateway.url)
        # Background syncs (set_presence=offline) do not count as activity.
        status, initial = await hs.request(
            "GET", f"{V3}/sync?set_presence=offline", token=bob.access_token
        )
        assert status == 200, initial
        no_presence = json.dumps({"presence": {"not_types": ["*"]}})
        waiting = asyncio.create_task(
            hs.request(
                "GET",
                f"{V3}/sync?since={initial['next_batch']}&timeout=20000"
                f"&set_presence=unavailable&filter={no_presence}",
                token=bob.access_token,
            )
        )
        # The long poll has begun once it set bob's presence.
        for _ in range(500):
            status, presence = await hs.request(
                "GET", f"{V3}/presence/{bob.user_id}/status", token=bob.access_token
            )
            if presence["presence"] == "unavailable":
                break
            await asyncio.sleep(0.02)
        assert presence["presence"] == "unavailable"
        unheard = await send_text(alice, room_id, "while you look")
        status, woken = await waiting
        assert status == 200
        assert unheard in [
            e["event_id"] for e in woken["rooms"]["join"][room_id]["timeline"]["events"]
        ]
        heard = await send_text(alice, room_id, "while you are away")
        pushed = await gateway.wait_for("bob-key", heard)
        assert [p["event_id"] for p in gateway.pushes("bob-key")] == [heard]
        assert "content" not in pushed
        assert pushed["type"] == "m.room.message"
        assert pushed["sender"] == alice.user_id
    finally:
        await alice.close()
        await bob.close()


async def test_pusher_set_after_unpushed_messages_gets_the_next_one(hs, users, gateway):
    """Messages to a user without a pusher look none up once it is known
    there is none; setting one must be seen by the very next message."""
    alice = await users("alice", "Alice")
    bob = await users("bob")
    carol = await users("carol")
    room = await room_with(alice, bob, carol)
    await add_pusher(hs, carol, "carol-key", gateway.url)
    for i in range(3):
        sent = await send_text(alice, room, f"before {i}")
        # Carol's push went out of the same lookup as Bob's (who has none).
        await gateway.wait_for("carol-key", sent)
    await add_pusher(hs, bob, "bob-key", gateway.url)
    after = await send_text(alice, room, "now with a pusher")
    pushed = await gateway.wait_for("bob-key", after)
    assert pushed["event_id"] == after
    assert [p["event_id"] for p in gateway.pushes("bob-key")] == [after]
