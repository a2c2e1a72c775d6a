"""The sliding sync extensions at the service level, on a real server: the
data comes in over real HTTP (to-device sends, key uploads, account data,
receipts, typing), and the extensions are asked what they would answer for a
given range, rooms of lists and subscriptions, as the engine asks them."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from signedjson.key import generate_signing_key

from homeserver.errors import MatrixError
from homeserver.sliding_sync.extension_request import RoomScope
from homeserver.sliding_sync.extensions import ExtensionScope, rooms_in_scope
from homeserver.sync.token import STREAMS, SyncToken
from tests.test_e2e_keys import Device

V3 = "/_matrix/client/v3"
_txn = itertools.count()


def now(hs: Any) -> SyncToken:
    positions = hs.server.notifier.positions
    return SyncToken({s: positions.get(s, 0) for s in STREAMS})


def scope(
    device: Device,
    since: SyncToken | None,
    upto: SyncToken,
    *,
    lists: Mapping[str, Sequence[str]] | None = None,
    subscribed: Sequence[str] = (),
) -> ExtensionScope:
    return ExtensionScope(
        user_id=device.user_id,
        device_id=device.device_id,
        since=since,
        upto=upto,
        list_rooms=lists or {},
        subscribed_rooms=subscribed,
        initial=since is None,
    )


async def build(hs: Any, body: Any, extension_scope: ExtensionScope) -> dict[str, Any]:
    extensions = hs.server.sliding_sync_extensions
    return await extensions.build(extensions.parse(body), extension_scope)


@pytest.fixture
async def device(hs: Any) -> Any:
    """device(name): registers the user (first time) and logs a new device in."""
    registered: set[str] = set()

    async def make(name: str) -> Device:
        if name not in registered:
            await hs.register(name, "pw")
            registered.add(name)
        status, body = await hs.request(
            "POST",
            f"{V3}/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": name},
                "password": "pw",
            },
        )
        assert status == 200, body
        return Device(
            hs,
            body["user_id"],
            body["device_id"],
            body["access_token"],
            generate_signing_key(body["device_id"]),
        )

    return make


async def shared_room(owner: Device, *others: Device) -> str:
    room_id = (await owner.ok("POST", "/createRoom", {"preset": "public_chat"}))["room_id"]
    for other in others:
        await other.ok("POST", f"/join/{room_id}", {})
    return room_id


async def send_to_device(sender: Device, recipient: Device, count: int) -> None:
    for i in range(count):
        await sender.ok(
            "PUT",
            f"/sendToDevice/m.test/t{next(_txn)}",
            {"messages": {recipient.user_id: {recipient.device_id: {"n": i}}}},
        )


# --- request parsing ----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        [],
        "to_device",
        {"to_device": True},
        {"to_device": {"enabled": "yes"}},
        {"to_device": {"enabled": True, "limit": 0}},
        {"to_device": {"enabled": True, "limit": "10"}},
        {"to_device": {"enabled": True, "since": 12}},
        {"to_device": {"enabled": True, "since": "s12_3"}},
        {"e2ee": {"enabled": 1}},
        {"account_data": {"enabled": True, "lists": "*"}},
        {"receipts": {"enabled": True, "rooms": [1]}},
        {"typing": {"enabled": True, "lists": ["x"] * 1001}},
    ],
)
async def test_bad_extension_requests_are_400(hs: Any, body: Any) -> None:
    with pytest.raises(MatrixError) as raised:
        hs.server.sliding_sync_extensions.parse(body)
    assert raised.value.status == 400
    assert raised.value.errcode in ("M_BAD_JSON", "M_INVALID_PARAM")


async def test_extensions_are_off_unless_enabled_and_unknown_ones_are_ignored(
    hs: Any, device: Any
) -> None:
    bob = await device("bob")
    await send_to_device(bob, bob, 1)
    parse = hs.server.sliding_sync_extensions.parse
    assert parse(None) == parse({}) == parse({"threads": {"enabled": True}})
    first = scope(bob, None, now(hs))
    assert await build(hs, None, first) == {}
    assert await build(hs, {"to_device": {}, "e2ee": {"enabled": False}}, first) == {}


def test_rooms_in_scope_follow_the_named_lists_and_subscriptions() -> None:
    extension = ExtensionScope(
        user_id="@u:h",
        device_id="D",
        since=None,
        upto=SyncToken({}),
        list_rooms={"all": ["!a:h", "!b:h"], "dms": ["!c:h"]},
        subscribed_rooms=["!d:h"],
        initial=True,
    )
    assert rooms_in_scope(RoomScope(), extension) == ["!a:h", "!b:h", "!c:h", "!d:h"]
    assert rooms_in_scope(RoomScope(lists=("dms",), rooms=()), extension) == ["!c:h"]
    assert rooms_in_scope(RoomScope(lists=None, rooms=("*",)), extension) == ["!d:h"]
    # An explicit room id counts wherever it is in the response; unknown ones do not.
    assert rooms_in_scope(RoomScope(lists=(), rooms=("!b:h", "!zz:h")), extension) == ["!b:h"]
    assert rooms_in_scope(RoomScope(lists=("nope",), rooms=None), extension) == []


# --- to_device -----------------------------------------------------------------


async def test_to_device_batches_by_limit_and_deletes_only_what_was_acknowledged(
    hs: Any, device: Any
) -> None:
    alice, bob = await device("alice"), await device("bob")
    await send_to_device(alice, bob, 3)
    upto = now(hs)
    request = {"to_device": {"enabled": True, "limit": 2}}

    first = (await build(hs, request, scope(bob, None, upto)))["to_device"]
    assert [e["content"]["n"] for e in first["events"]] == [0, 1]
    assert {e["sender"] for e in first["events"]} == {alice.user_id}
    assert {e["type"] for e in first["events"]} == {"m.test"}
    # The response was perhaps lost: without its next_batch, the same come again.
    again = (await build(hs, request, scope(bob, upto, upto)))["to_device"]
    assert again == first

    request["to_device"]["since"] = first["next_batch"]
    rest = (await build(hs, request, scope(bob, upto, upto)))["to_device"]
    assert [e["content"]["n"] for e in rest["events"]] == [2]
    assert rest["next_batch"] == str(upto["to_device"])

    # Acknowledging the last batch deletes everything; nothing is left to say.
    request["to_device"]["since"] = rest["next_batch"]
    assert await build(hs, request, scope(bob, upto, upto)) == {}
    fresh = await build(hs, {"to_device": {"enabled": True}}, scope(bob, None, upto))
    assert fresh["to_device"] == {"next_batch": str(upto["to_device"]), "events": []}


async def test_to_device_reaches_only_the_addressed_device(hs: Any, device: Any) -> None:
    alice, bob, bob_phone = await device("alice"), await device("bob"), await device("bob")
    await send_to_device(alice, bob, 1)
    upto = now(hs)
    request = {"to_device": {"enabled": True}}
    assert len((await build(hs, request, scope(bob, None, upto)))["to_device"]["events"]) == 1
    other = (await build(hs, request, scope(bob_phone, None, upto)))["to_device"]
    assert other["events"] == []


async def test_to_device_since_from_the_future_says_nothing(hs: Any, device: Any) -> None:
    alice, bob = await device("alice"), await device("bob")
    await send_to_device(alice, bob, 1)
    upto = now(hs)
    future = {"to_device": {"enabled": True, "since": str(upto["to_device"] + 1000)}}
    assert await build(hs, future, scope(bob, upto, upto)) == {}
    # ... and deleted nothing.
    fresh = await build(hs, {"to_device": {"enabled": True}}, scope(bob, None, upto))
    assert len(fresh["to_device"]["events"]) == 1


# --- e2ee ----------------------------------------------------------------------


async def test_e2ee_counts_first_then_only_when_they_change(hs: Any, device: Any) -> None:
    bob = await device("bob")
    await bob.ok("POST", "/keys/upload", {"one_time_keys": bob.one_time_keys("a", 3)})
    request = {"e2ee": {"enabled": True}}
    first_upto = now(hs)
    first = (await build(hs, request, scope(bob, None, first_upto)))["e2ee"]
    assert first == {
        "device_one_time_keys_count": {"signed_curve25519": 3},
        "device_unused_fallback_key_types": [],
    }
    # Unchanged: nothing to say, so a long poll keeps waiting.
    assert await build(hs, request, scope(bob, first_upto, now(hs))) == {}

    fallback = {"signed_curve25519:f": bob.one_time_key("fb", fallback=True)}
    await bob.ok(
        "POST",
        "/keys/upload",
        {"one_time_keys": bob.one_time_keys("b", 2), "fallback_keys": fallback},
    )
    changed = (await build(hs, request, scope(bob, first_upto, now(hs))))["e2ee"]
    assert changed["device_one_time_keys_count"] == {"signed_curve25519": 5}
    assert changed["device_unused_fallback_key_types"] == ["signed_curve25519"]


async def test_e2ee_device_lists_changed_and_left(hs: Any, device: Any) -> None:
    alice, bob = await device("alice"), await device("bob")
    room_id = await shared_room(alice, bob)
    request = {"e2ee": {"enabled": True}}
    start = now(hs)
    await build(hs, request, scope(alice, None, start))

    await device("bob")  # bob logs in a new device
    changed = (await build(hs, request, scope(alice, start, now(hs))))["e2ee"]
    assert changed["device_lists"] == {"changed": [bob.user_id], "left": []}
    # The counts did not change, so they are not repeated.
    assert "device_one_time_keys_count" not in changed

    before_leave = now(hs)
    await bob.ok("POST", f"/rooms/{room_id}/leave", {})
    left = (await build(hs, request, scope(alice, before_leave, now(hs))))["e2ee"]
    assert left["device_lists"] == {"changed": [], "left": [bob.user_id]}


# --- account_data ----------------------------------------------------------------


async def test_account_data_global_and_of_the_rooms_in_scope(hs: Any, device: Any) -> None:
    alice = await device("alice")
    listed, subscribed, elsewhere = [await shared_room(alice) for _ in range(3)]
    user = f"/user/{alice.user_id}"
    await alice.ok("PUT", f"{user}/account_data/m.global", {"g": 1})
    for room_id in (listed, subscribed, elsewhere):
        await alice.ok("PUT", f"{user}/rooms/{room_id}/account_data/m.room", {"r": room_id})
    start = now(hs)
    lists = {"main": [listed]}

    first = (
        await build(
            hs,
            {"account_data": {"enabled": True}},
            scope(alice, None, start, lists=lists, subscribed=[subscribed]),
        )
    )["account_data"]
    global_types = {e["type"]: e["content"] for e in first["global"]}
    assert global_types["m.global"] == {"g": 1}
    # The push rules come with the first response, as in /sync v2.
    assert "global" in global_types["m.push_rules"]
    assert first["rooms"] == {
        listed: [{"type": "m.room", "content": {"r": listed}}],
        subscribed: [{"type": "m.room", "content": {"r": subscribed}}],
    }

    only_list = {"account_data": {"enabled": True, "lists": ["main"], "rooms": []}}
    narrowed = (
        await build(hs, only_list, scope(alice, None, start, lists=lists, subscribed=[subscribed]))
    )["account_data"]
    assert set(narrowed["rooms"]) == {listed}

    # Incremental: only what changed since.
    assert (
        await build(
            hs, {"account_data": {"enabled": True}}, scope(alice, start, now(hs), lists=lists)
        )
        == {}
    )
    await alice.ok("PUT", f"{user}/rooms/{listed}/account_data/m.room", {"r": "again"})
    await alice.ok("PUT", f"{user}/rooms/{elsewhere}/account_data/m.room", {"r": "again"})
    later = (
        await build(
            hs, {"account_data": {"enabled": True}}, scope(alice, start, now(hs), lists=lists)
        )
    )["account_data"]
    assert later == {"rooms": {listed: [{"type": "m.room", "content": {"r": "again"}}]}}


# --- receipts and typing ------------------------------------------------------------


async def test_receipts_of_the_rooms_in_scope(hs: Any, device: Any) -> None:
    alice, bob = await device("alice"), await device("bob")
    listed = await shared_room(alice, bob)
    other = await shared_room(alice, bob)
    start = now(hs)
    request = {"receipts": {"enabled": True}}
    lists = {"main": [listed]}
    assert await build(hs, request, scope(alice, start, now(hs), lists=lists)) == {}

    events = {}
    for room_id in (listed, other):
        sent = await bob.ok(
            "PUT", f"/rooms/{room_id}/send/m.room.message/t{next(_txn)}", {"body": "hi"}
        )
        events[room_id] = sent["event_id"]
        await bob.ok("POST", f"/rooms/{room_id}/receipt/m.read/{sent['event_id']}", {})
    answer = (await build(hs, request, scope(alice, start, now(hs), lists=lists)))["receipts"]
    assert list(answer["rooms"]) == [listed]
    receipt = answer["rooms"][listed]
    assert receipt["type"] == "m.receipt"
    assert bob.user_id in receipt["content"][events[listed]]["m.read"]

    # The first request of a connection carries the rooms' current receipts.
    first = (await build(hs, request, scope(alice, None, now(hs), lists=lists)))["receipts"]
    assert bob.user_id in first["rooms"][listed]["content"][events[listed]]["m.read"]
    # Nobody reads anything: nothing to say.
    settled = now(hs)
    assert await build(hs, request, scope(alice, settled, settled, lists=lists)) == {}


async def test_typing_of_the_rooms_in_scope(hs: Any, device: Any) -> None:
    alice, bob = await device("alice"), await device("bob")
    subscribed = await shared_room(alice, bob)
    other = await shared_room(alice, bob)
    start = now(hs)
    request = {"typing": {"enabled": True, "lists": [], "rooms": ["*"]}}
    for room_id in (subscribed, other):
        await bob.ok(
            "PUT", f"/rooms/{room_id}/typing/{bob.user_id}", {"typing": True, "timeout": 30_000}
        )
    answer = (await build(hs, request, scope(alice, start, now(hs), subscribed=[subscribed])))[
        "typing"
    ]
    assert answer == {
        "rooms": {subscribed: {"type": "m.typing", "content": {"user_ids": [bob.user_id]}}}
    }
    stopped_at = now(hs)
    await bob.ok("PUT", f"/rooms/{subscribed}/typing/{bob.user_id}", {"typing": False})
    stopped = (
        await build(hs, request, scope(alice, stopped_at, now(hs), subscribed=[subscribed]))
    )["typing"]
    assert stopped["rooms"][subscribed]["content"] == {"user_ids": []}
