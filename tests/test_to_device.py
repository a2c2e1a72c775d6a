"""Send-to-device messages and device list changes in /sync, between two users
with two devices each, as matrix-nio sees them (raw HTTP where nio has no call
or where the exact JSON matters)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import nio
import pytest

V3 = "/_matrix/client/v3"
_txn = itertools.count()

Login = Callable[..., Any]


@pytest.fixture
async def login(hs: Any) -> AsyncIterator[Login]:
    """login(name) registers the user (first time) and logs a new device in."""
    clients: list[nio.AsyncClient] = []
    registered: set[str] = set()

    async def make(name: str) -> nio.AsyncClient:
        if name not in registered:
            await hs.register(name, "pw")
            registered.add(name)
        client = nio.AsyncClient(hs.url, f"@{name}:localhost")
        clients.append(client)
        assert isinstance(await client.login("pw"), nio.LoginResponse)
        return client

    yield make
    for client in clients:
        await client.close()


async def sync(client: nio.AsyncClient, since: str | None = None, **kw: Any) -> nio.SyncResponse:
    kw.setdefault("timeout", 0)
    resp = await client.sync(since=since, **kw)
    assert isinstance(resp, nio.SyncResponse), resp
    return resp


async def initial_to_device(hs: Any, client: nio.AsyncClient) -> list[dict[str, Any]]:
    """The to-device events of an initial sync (nio would resume from its last token)."""
    status, body = await hs.request("GET", f"{V3}/sync", token=client.access_token)
    assert status == 200, body
    return body.get("to_device", {}).get("events", [])


def received(resp: nio.SyncResponse) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, sender, content) of the response's to-device events."""
    return [(e.source["type"], e.sender, e.source["content"]) for e in resp.to_device_events]


async def send(
    client: nio.AsyncClient, user_id: str, device_id: str, content: dict[str, Any], txn: str
) -> None:
    resp = await client.to_device(
        nio.ToDeviceMessage("org.example.ping", user_id, device_id, content), tx_id=txn
    )
    assert isinstance(resp, nio.ToDeviceResponse), resp


async def raw_send(
    hs: Any, client: nio.AsyncClient, body: Any, txn: str | None = None
) -> tuple[int, Any]:
    txn = txn or f"t{next(_txn)}"
    return await hs.request(
        "PUT", f"{V3}/sendToDevice/org.example.ping/{txn}", token=client.access_token, json=body
    )


async def test_a_message_is_delivered_until_acknowledged_and_never_after(
    hs: Any, login: Login
) -> None:
    alice = await login("alice")
    bob = await login("bob")
    bob_phone = await login("bob")
    start = (await sync(bob)).next_batch
    phone_start = (await sync(bob_phone)).next_batch

    await send(alice, bob.user_id, bob.device_id, {"n": 1}, "txn1")

    first = await sync(bob, start)
    assert received(first) == [("org.example.ping", alice.user_id, {"n": 1})]
    # That response was lost: the same token gets the message again.
    again = await sync(bob, start)
    assert received(again) == [("org.example.ping", alice.user_id, {"n": 1})]
    # Using the new token acknowledges it: gone, even for the old token.
    assert received(await sync(bob, again.next_batch)) == []
    assert received(await sync(bob, start)) == []
    assert await initial_to_device(hs, bob) == []
    # Bob's other device was not addressed.
    assert received(await sync(bob_phone, phone_start)) == []
    assert await initial_to_device(hs, bob_phone) == []


async def test_star_reaches_every_device_of_the_user_and_no_one_else(hs: Any, login: Login) -> None:
    alice = await login("alice")
    alice_phone = await login("alice")
    bob = await login("bob")
    bob_phone = await login("bob")
    tokens = {c: (await sync(c)).next_batch for c in (alice, alice_phone, bob, bob_phone)}

    status, body = await raw_send(
        hs,
        alice,
        {
            "messages": {
                bob.user_id: {"*": {"to": "all"}, bob_phone.device_id: {"to": "phone"}},
                "@nobody:localhost": {"*": {"to": "nobody"}},
                alice.user_id: {"NOSUCHDEVICE": {"to": "nowhere"}},
            }
        },
    )
    assert status == 200, body

    ping = "org.example.ping"
    assert received(await sync(bob, tokens[bob])) == [(ping, alice.user_id, {"to": "all"})]
    # A device named on its own gets its own message, once.
    assert received(await sync(bob_phone, tokens[bob_phone])) == [
        (ping, alice.user_id, {"to": "phone"})
    ]
    assert received(await sync(alice, tokens[alice])) == []
    assert received(await sync(alice_phone, tokens[alice_phone])) == []


async def test_a_retried_transaction_is_delivered_once(hs: Any, login: Login) -> None:
    alice = await login("alice")
    alice_phone = await login("alice")
    bob = await login("bob")
    start = (await sync(bob)).next_batch

    await send(alice, bob.user_id, bob.device_id, {"n": 1}, "same")
    await send(alice, bob.user_id, bob.device_id, {"n": 2}, "same")
    # Transaction ids belong to the sending device.
    await send(alice_phone, bob.user_id, bob.device_id, {"n": 3}, "same")

    got = received(await sync(bob, start))
    assert got == [
        ("org.example.ping", alice.user_id, {"n": 1}),
        ("org.example.ping", alice.user_id, {"n": 3}),
    ]


async def test_bad_requests_are_refused_and_deliver_nothing(hs: Any, login: Login) -> None:
    alice = await login("alice")
    bob = await login("bob")
    start = (await sync(bob)).next_batch
    good = {bob.device_id: {"ok": True}}

    cases = [
        ({}, "M_MISSING_PARAM"),
        ({"messages": []}, "M_BAD_JSON"),
        ({"messages": {bob.user_id: ["x"]}}, "M_BAD_JSON"),
        ({"messages": {bob.user_id: {bob.device_id: "text"}}}, "M_BAD_JSON"),
        # One bad entry spoils the whole request, good ones included.
        ({"messages": {bob.user_id: good, "not-a-user": good}}, "M_INVALID_PARAM"),
    ]
    for body, errcode in cases:
        status, error = await raw_send(hs, alice, body)
        assert (status, error["errcode"]) == (400, errcode), body

    assert received(await sync(bob, start)) == []


async def test_a_full_inbox_is_delivered_in_order_across_syncs(hs: Any, login: Login) -> None:
    alice = await login("alice")
    bob = await login("bob")
    start = (await sync(bob)).next_batch
    for n in range(105):
        status, body = await raw_send(hs, alice, {"messages": {bob.user_id: {"*": {"n": n}}}})
        assert status == 200, body

    first = await sync(bob, start)
    assert [c["n"] for _, _, c in received(first)] == list(range(100))
    second = await sync(bob, first.next_batch)
    assert [c["n"] for _, _, c in received(second)] == list(range(100, 105))
    assert received(await sync(bob, second.next_batch)) == []


async def test_a_long_poll_wakes_for_a_message(login: Login) -> None:
    alice = await login("alice")
    bob = await login("bob")
    start = (await sync(bob)).next_batch

    waiting = asyncio.create_task(sync(bob, start, timeout=30_000))
    await asyncio.sleep(0.1)
    await send(alice, bob.user_id, bob.device_id, {"wake": "up"}, "wake")
    assert received(await waiting) == [("org.example.ping", alice.user_id, {"wake": "up"})]


async def test_messages_for_other_servers_wait_in_their_outbox(hs: Any, login: Login) -> None:
    alice = await login("alice")
    bob = await login("bob")
    start = (await sync(bob)).next_batch
    status, body = await raw_send(
        hs,
        alice,
        {
            "messages": {
                "@carol:remote.example": {"*": {"n": 1}},
                "@dave:remote.example": {"DEVICE": {"n": 2}},
                "@erin:elsewhere.example": {"*": {"n": 3}},
                bob.user_id: {"*": {"n": 4}},
            }
        },
    )
    assert status == 200, body

    rows = await hs.pool.fetch(
        "SELECT destination, sender, type, messages FROM to_device_outbox ORDER BY destination"
    )
    assert [(r["destination"], r["sender"], r["type"]) for r in rows] == [
        ("elsewhere.example", alice.user_id, "org.example.ping"),
        ("remote.example", alice.user_id, "org.example.ping"),
    ]
    assert json.loads(rows[1]["messages"]) == {
        "@carol:remote.example": {"*": {"n": 1}},
        "@dave:remote.example": {"DEVICE": {"n": 2}},
    }
    assert received(await sync(bob, start)) == [("org.example.ping", alice.user_id, {"n": 4})]


async def test_a_deleted_device_loses_its_messages(hs: Any, login: Login) -> None:
    alice = await login("alice")
    bob = await login("bob")
    await send(alice, bob.user_id, bob.device_id, {"n": 1}, "t")
    assert isinstance(await bob.logout(), nio.LogoutResponse)
    count = await hs.pool.fetchval("SELECT count(*) FROM to_device_inbox")
    assert count == 0


# Device lists


def device_lists(resp: nio.SyncResponse) -> tuple[list[str], list[str]]:
    return sorted(resp.device_list.changed), sorted(resp.device_list.left)


async def shared_room(owner: nio.AsyncClient, *members: nio.AsyncClient) -> str:
    created = await owner.room_create(invite=[m.user_id for m in members])
    assert isinstance(created, nio.RoomCreateResponse), created
    for member in members:
        assert isinstance(await member.join(created.room_id), nio.JoinResponse)
    return created.room_id


async def test_a_new_device_of_a_room_mate_is_reported_as_changed(hs: Any, login: Login) -> None:
    alice = await login("alice")
    bob = await login("bob")
    await login("carol")
    await shared_room(alice, bob)
    bob_token = (await sync(bob)).next_batch
    alice_token = (await sync(alice)).next_batch

    await login("alice")
    # Carol shares no room with bob: her new device is none of his business.
    await login("carol")

    resp = await sync(bob, bob_token)
    assert device_lists(resp) == (["@alice:localhost"], [])
    # Alice's own devices changed: her other clients learn of it too.
    assert device_lists(await sync(alice, alice_token)) == (["@alice:localhost"], [])
    # Reported once.
    assert device_lists(await sync(bob, resp.next_batch)) == ([], [])


async def test_a_deleted_device_is_reported_as_changed(hs: Any, login: Login) -> None:
    alice = await login("alice")
    alice_phone = await login("alice")
    bob = await login("bob")
    await shared_room(alice, bob)
    token = (await sync(bob)).next_batch

    assert isinstance(await alice_phone.logout(), nio.LogoutResponse)

    assert device_lists(await sync(bob, token)) == (["@alice:localhost"], [])


async def test_sharing_a_room_and_leaving_the_last_one(hs: Any, login: Login) -> None:
    alice = await login("alice")
    bob = await login("bob")
    carol = await login("carol")
    first = await shared_room(alice, bob)
    second = await shared_room(alice, bob)
    token = (await sync(bob)).next_batch

    # Carol joins a room of bob's: bob starts tracking her devices.
    carol_room = await shared_room(bob, carol)
    resp = await sync(bob, token)
    assert device_lists(resp) == (["@carol:localhost"], [])
    token = resp.next_batch

    # Alice leaves one of two shared rooms: nothing to forget yet.
    assert isinstance(await alice.room_leave(first), nio.RoomLeaveResponse)
    resp = await sync(bob, token)
    assert device_lists(resp) == ([], [])
    token = resp.next_batch

    # The last one: bob's client may forget alice's devices.
    assert isinstance(await alice.room_leave(second), nio.RoomLeaveResponse)
    resp = await sync(bob, token)
    assert device_lists(resp) == ([], ["@alice:localhost"])
    token = resp.next_batch

    # Bob leaves carol's room: carol is "left" for bob, bob for carol.
    carol_token = (await sync(carol)).next_batch
    assert isinstance(await bob.room_leave(carol_room), nio.RoomLeaveResponse)
    assert device_lists(await sync(bob, token)) == ([], ["@carol:localhost"])
    assert device_lists(await sync(carol, carol_token)) == ([], ["@bob:localhost"])


async def test_joining_a_room_reports_its_members_as_changed(hs: Any, login: Login) -> None:
    alice = await login("alice")
    bob = await login("bob")
    carol = await login("carol")
    room = await shared_room(alice, carol)
    invite = await alice.room_invite(room, bob.user_id)
    assert isinstance(invite, nio.RoomInviteResponse), invite
    token = (await sync(bob)).next_batch

    assert isinstance(await bob.join(room), nio.JoinResponse)

    assert device_lists(await sync(bob, token)) == (["@alice:localhost", "@carol:localhost"], [])


async def test_device_list_changes_wake_a_long_poll(hs: Any, login: Login) -> None:
    alice = await login("alice")
    bob = await login("bob")
    await shared_room(alice, bob)
    token = (await sync(bob)).next_batch

    waiting = asyncio.create_task(sync(bob, token, timeout=30_000))
    await asyncio.sleep(0.1)
    await login("alice")
    assert device_lists(await waiting) == (["@alice:localhost"], [])


async def test_device_lists_in_raw_sync(hs: Any, login: Login) -> None:
    """The exact JSON: present with both keys; key counts at zero (no keys yet)."""
    bob = await login("bob")
    status, body = await hs.request("GET", f"{V3}/sync", token=bob.access_token)
    assert status == 200, body
    assert body["device_lists"] == {"changed": [], "left": []}
    assert body["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert body["device_unused_fallback_key_types"] == []
    status, body = await hs.request(
        "GET", f"{V3}/sync?since={quote(body['next_batch'])}&timeout=0", token=bob.access_token
    )
    assert status == 200, body
    assert body["device_lists"] == {"changed": [], "left": []}
