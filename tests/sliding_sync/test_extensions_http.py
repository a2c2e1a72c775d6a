"""The sliding sync extensions through the endpoints, over real HTTP: what a
client sees in `extensions`, that news in any of them ends a long poll, and
that a bad `extensions` object is refused without touching the connection."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from tests.conftest import RunningServer, make_config, start_server
from tests.sliding_sync.helpers import STABLE, User, all_rooms, new_user

V3 = "/_matrix/client/v3"
_txn = itertools.count()
ALL = {
    "to_device": {"enabled": True},
    "e2ee": {"enabled": True},
    "account_data": {"enabled": True},
    "receipts": {"enabled": True},
    "typing": {"enabled": True},
}


def body(**extensions: Any) -> dict[str, Any]:
    return {**all_rooms(), "extensions": extensions or ALL}


async def device_of(user: Any) -> str:
    return str((await user.call("GET", f"{V3}/account/whoami"))["device_id"])


async def send_to_device(sender: Any, user_id: str, device_id: str, n: int) -> None:
    await sender.call(
        "PUT",
        f"{V3}/sendToDevice/m.test/t{next(_txn)}",
        {"messages": {user_id: {device_id: {"n": n}}}},
    )


async def long_poll_woken_by(user: Any, request: dict[str, Any], pos: str, action: Any) -> Any:
    """Park a long poll (10 s), do `action`, and return the response with
    the time it took: news must end the poll at once."""
    poll = asyncio.ensure_future(user.sync_ok(request, pos=pos, wait_ms=10_000))
    await asyncio.sleep(0.1)
    assert not poll.done(), poll.result()
    started = time.monotonic()
    await action()
    response = await asyncio.wait_for(poll, 10)
    return response, time.monotonic() - started


async def test_to_device_delivered_acknowledged_and_waking(hs: RunningServer) -> None:
    alice, bob = await new_user(hs, "alice"), await new_user(hs, "bob")
    bob_device = await device_of(bob)
    await send_to_device(alice, bob.user_id, bob_device, 0)
    request = body(to_device={"enabled": True})

    first = await bob.sync_ok(request)
    to_device = first["extensions"]["to_device"]
    assert [(e["sender"], e["type"], e["content"]) for e in to_device["events"]] == [
        (alice.user_id, "m.test", {"n": 0})
    ]
    # Not acknowledged yet (the client sent no since): it comes again.
    again = await bob.sync_ok(request, pos=first["pos"])
    assert again["extensions"]["to_device"]["events"] == to_device["events"]

    request["extensions"]["to_device"]["since"] = to_device["next_batch"]
    response, took = await long_poll_woken_by(
        bob, request, again["pos"], lambda: send_to_device(alice, bob.user_id, bob_device, 1)
    )
    assert took < 5
    to_device = response["extensions"]["to_device"]
    assert [e["content"] for e in to_device["events"]] == [{"n": 1}]

    # Acknowledged: an idle request says nothing about to-device any more.
    request["extensions"]["to_device"]["since"] = to_device["next_batch"]
    idle = await bob.sync_ok(request, pos=response["pos"])
    assert "to_device" not in idle.get("extensions", {})


async def test_e2ee_counts_then_device_list_changes(hs: RunningServer) -> None:
    alice, bob = await new_user(hs, "alice"), await new_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    request = body(e2ee={"enabled": True})
    first = await alice.sync_ok(request)
    assert first["extensions"]["e2ee"] == {
        "device_one_time_keys_count": {"signed_curve25519": 0},
        "device_unused_fallback_key_types": [],
    }

    async def bob_logs_in_again() -> None:
        status, answer = await hs.request(
            "POST",
            f"{V3}/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "bob"},
                "password": "secret",
            },
        )
        assert status == 200, answer

    response, took = await long_poll_woken_by(alice, request, first["pos"], bob_logs_in_again)
    assert took < 5
    assert response["extensions"]["e2ee"] == {
        "device_lists": {"changed": [bob.user_id], "left": []}
    }


async def test_account_data_receipts_and_typing_of_listed_rooms(hs: RunningServer) -> None:
    alice, bob = await new_user(hs, "alice"), await new_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat", name="shared")
    await bob.join(room_id)
    event_id = await bob.send(room_id, "read me")
    user = f"{V3}/user/{alice.user_id}"
    await alice.call("PUT", f"{user}/account_data/m.global", {"g": 1})
    await alice.call("PUT", f"{user}/rooms/{room_id}/account_data/m.room", {"r": 1})
    request = body(
        account_data={"enabled": True},
        receipts={"enabled": True},
        typing={"enabled": True},
    )
    first = await alice.sync_ok(request)
    extensions = first["extensions"]
    global_data = {e["type"]: e["content"] for e in extensions["account_data"]["global"]}
    assert global_data["m.global"] == {"g": 1}
    assert "m.push_rules" in global_data
    assert extensions["account_data"]["rooms"] == {
        room_id: [{"type": "m.room", "content": {"r": 1}}]
    }

    async def bob_reads() -> None:
        await bob.call("POST", f"{V3}/rooms/{room_id}/receipt/m.read/{event_id}", {})

    response, took = await long_poll_woken_by(alice, request, first["pos"], bob_reads)
    assert took < 5
    receipt = response["extensions"]["receipts"]["rooms"][room_id]
    assert receipt["type"] == "m.receipt"
    assert bob.user_id in receipt["content"][event_id]["m.read"]

    async def bob_types() -> None:
        await bob.call(
            "PUT", f"{V3}/rooms/{room_id}/typing/{bob.user_id}", {"typing": True, "timeout": 5000}
        )

    response, took = await long_poll_woken_by(alice, request, response["pos"], bob_types)
    assert took < 5
    assert response["extensions"]["typing"] == {
        "rooms": {room_id: {"type": "m.typing", "content": {"user_ids": [bob.user_id]}}}
    }

    async def alice_tags() -> None:
        await alice.call("PUT", f"{user}/rooms/{room_id}/account_data/m.room", {"r": 2})

    response, took = await long_poll_woken_by(alice, request, response["pos"], alice_tags)
    assert took < 5
    assert response["extensions"]["account_data"] == {
        "rooms": {room_id: [{"type": "m.room", "content": {"r": 2}}]}
    }


async def test_extensions_limited_to_the_named_lists(hs: RunningServer) -> None:
    alice, bob = await new_user(hs, "alice"), await new_user(hs, "bob")
    listed = await alice.create_room(preset="public_chat")
    other = await alice.create_room(preset="public_chat")
    for room_id in (listed, other):
        await bob.join(room_id)
    # Only `listed` is in the range of list "top" (the most recent room).
    await bob.send(listed, "latest")
    request = {
        "lists": {"top": {"ranges": [[0, 0]], "timeline_limit": 1, "required_state": []}},
        "extensions": {"typing": {"enabled": True, "lists": ["top"], "rooms": []}},
    }
    first = await alice.sync_ok(request)
    assert list(first["rooms"]) == [listed]

    async def bob_types_in_both() -> None:
        for room_id in (other, listed):
            await bob.call(
                "PUT",
                f"{V3}/rooms/{room_id}/typing/{bob.user_id}",
                {"typing": True, "timeout": 5000},
            )

    response, _ = await long_poll_woken_by(alice, request, first["pos"], bob_types_in_both)
    typing = response["extensions"]["typing"]["rooms"]
    while listed not in typing:
        response = await alice.sync_ok(request, pos=response["pos"], wait_ms=5000)
        typing = response.get("extensions", {}).get("typing", {}).get("rooms", {})
    assert set(typing) == {listed}


async def test_the_stable_endpoint_serves_the_extensions(hs: RunningServer) -> None:
    alice, bob = await new_user(hs, "alice"), await new_user(hs, "bob")
    bob_device = await device_of(bob)
    await send_to_device(alice, bob.user_id, bob_device, 7)
    status, response = await bob.stable(
        {"extensions": {"to_device": {"enabled": True}, "e2ee": {"enabled": True}}}
    )
    assert status == 200, response
    assert [e["content"] for e in response["extensions"]["to_device"]["events"]] == [{"n": 7}]
    assert "device_one_time_keys_count" in response["extensions"]["e2ee"]


async def test_bad_extensions_are_refused_and_the_connection_kept(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room_id = await alice.create_room()
    first = await alice.sync_ok(body())
    assert room_id in first["rooms"]
    for bad in (
        {"to_device": {"enabled": "yes"}},
        {"to_device": {"enabled": True, "since": "not a position"}},
        {"to_device": {"enabled": True, "limit": -1}},
        {"account_data": {"enabled": True, "lists": "all"}},
        {"receipts": []},
    ):
        status, error = await alice.sliding({**all_rooms(), "extensions": bad}, pos=first["pos"])
        assert status == 400, (bad, error)
        assert error["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), error
    status, error = await hs.request(
        "POST", STABLE, token=alice.token, json={"extensions": {"typing": {"enabled": 1}}}
    )
    assert status == 400 and error["errcode"] == "M_BAD_JSON"
    # The connection is as it was: its pos still works and has nothing new.
    after = await alice.sync_ok(body(), pos=first["pos"])
    assert after["rooms"] == {}


async def test_a_room_entering_the_list_brings_its_earlier_receipts(hs: RunningServer) -> None:
    alice, bob = await new_user(hs, "alice"), await new_user(hs, "bob")
    lower = await alice.create_room(preset="public_chat")
    await bob.join(lower)
    read = await bob.send(lower, "read before alice looked")
    await bob.call("POST", f"{V3}/rooms/{lower}/receipt/m.read/{read}", {})
    top = await alice.create_room(preset="public_chat")
    request = {
        "lists": {"top": {"ranges": [[0, 0]], "timeline_limit": 1, "required_state": []}},
        "extensions": {"receipts": {"enabled": True}, "account_data": {"enabled": True}},
    }
    first = await alice.sync_ok(request)
    assert list(first["rooms"]) == [top]
    assert lower not in first["extensions"].get("receipts", {}).get("rooms", {})

    # A message brings `lower` into the range: sent afresh, with the receipt
    # set before this connection's previous response.
    await alice.send(lower, "bump")
    response = await alice.sync_ok(request, pos=first["pos"])
    assert response["rooms"][lower]["initial"] is True
    receipt = response["extensions"]["receipts"]["rooms"][lower]
    assert bob.user_id in receipt["content"][read]["m.read"]


async def test_to_device_since_and_unacknowledged_messages_survive_a_restart(
    database: str, tmp_path: Any
) -> None:
    config = make_config(database, tmp_path)
    hs = await start_server(config)
    try:
        alice, bob = await new_user(hs, "alice"), await new_user(hs, "bob")
        bob_device = await device_of(bob)
        await send_to_device(alice, bob.user_id, bob_device, 1)
        request = body(to_device={"enabled": True})
        first = await bob.sync_ok(request)
        since = first["extensions"]["to_device"]["next_batch"]
        await send_to_device(alice, bob.user_id, bob_device, 2)
    finally:
        await hs.http.close()
        await hs.server.stop()
    hs = await start_server(config)
    try:
        bob = User(hs, {"user_id": bob.user_id, "access_token": bob.token})
        request["extensions"]["to_device"]["since"] = since
        # The first message was acknowledged by `since`; the second, sent
        # before the restart and never delivered, comes now.
        after = await bob.sync_ok(request, pos=first["pos"])
        assert [e["content"] for e in after["extensions"]["to_device"]["events"]] == [{"n": 2}]
    finally:
        await hs.http.close()
        await hs.server.stop()
