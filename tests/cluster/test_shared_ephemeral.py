"""The other streams across two processes: typing, receipts, to-device,
device lists, account data and presence set through process A wake a long
poll parked on process B, which shows them."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from tests.cluster.shared import (
    bodies,
    create_room,
    join,
    ok,
    pair,
    parked,
    send,
    sync,
    sync_until,
    timed,
)


async def crosses(server, token, since, act, shows) -> dict[str, Any]:
    """`act()` wakes the long poll of `token` parked on `server`, promptly,
    with a response that `shows`."""
    poll = asyncio.create_task(timed(sync(server, token, since, timeout_ms=20_000)))
    await parked(poll)
    await act()
    elapsed, response = await poll
    assert shows(response), response
    assert elapsed < 3, elapsed
    return response


def ephemeral(response: dict[str, Any], room_id: str, kind: str) -> list[dict[str, Any]]:
    room = response.get("rooms", {}).get("join", {}).get(room_id, {})
    return [e for e in room.get("ephemeral", {}).get("events", []) if e["type"] == kind]


async def test_ephemeral_streams_cross_processes(server_factory: Any):
    a, b = await pair(server_factory)
    alice = await a.register("alice")
    bob = await b.register("bob")
    at, bt = alice["access_token"], bob["access_token"]
    room_id = await create_room(a, at, invite=[bob["user_id"]])
    await join(b, bt, room_id)
    event_id = await send(a, at, room_id, "read me")
    # B hears of the message a moment after A answered the send.
    first = await sync(b, bt)
    since = first["next_batch"]
    if "read me" not in bodies(first, room_id):
        seen = await sync_until(b, bt, since, lambda r: "read me" in bodies(r, room_id))
        since = seen["next_batch"]
    alice_path = quote(alice["user_id"])

    # Typing through A, seen by Bob's poll on B.
    async def typing():
        await ok(
            a,
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/typing/{alice_path}",
            at,
            {"typing": True, "timeout": 30_000},
        )

    response = await crosses(
        b,
        bt,
        since,
        typing,
        lambda r: any(
            e["content"]["user_ids"] == [alice["user_id"]]
            for e in ephemeral(r, room_id, "m.typing")
        ),
    )

    async def stop_typing():
        await ok(
            a,
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/typing/{alice_path}",
            at,
            {"typing": False},
        )

    response = await crosses(
        b,
        bt,
        response["next_batch"],
        stop_typing,
        lambda r: any(e["content"]["user_ids"] == [] for e in ephemeral(r, room_id, "m.typing")),
    )

    # A read receipt.
    async def receipt():
        await ok(
            a,
            "POST",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}",
            at,
            {},
        )

    response = await crosses(
        b,
        bt,
        response["next_batch"],
        receipt,
        lambda r: any(
            alice["user_id"] in e["content"].get(event_id, {}).get("m.read", {})
            for e in ephemeral(r, room_id, "m.receipt")
        ),
    )

    # A to-device message to Bob's device.
    async def to_device():
        await ok(
            a,
            "PUT",
            "/_matrix/client/v3/sendToDevice/org.example.test/txn1",
            at,
            {"messages": {bob["user_id"]: {bob["device_id"]: {"hello": "bob"}}}},
        )

    response = await crosses(
        b,
        bt,
        response["next_batch"],
        to_device,
        lambda r: (
            [e["content"] for e in r.get("to_device", {}).get("events", [])] == [{"hello": "bob"}]
        ),
    )

    # Alice's new device: a device list change for Bob, who shares a room.
    async def new_device():
        status, body = await a.request(
            "POST",
            "/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "alice"},
                "password": "secret",
            },
        )
        assert status == 200, body

    response = await crosses(
        b,
        bt,
        response["next_batch"],
        new_device,
        lambda r: alice["user_id"] in r.get("device_lists", {}).get("changed", []),
    )

    # Presence Alice sets through A.
    async def presence():
        await ok(
            a,
            "PUT",
            f"/_matrix/client/v3/presence/{alice_path}/status",
            at,
            {"presence": "unavailable", "status_msg": "on a"},
        )

    await crosses(
        b,
        bt,
        response["next_batch"],
        presence,
        lambda r: any(
            e["sender"] == alice["user_id"] and e["content"].get("status_msg") == "on a"
            for e in r.get("presence", {}).get("events", [])
        ),
    )

    # Account data Alice sets through A, in her own poll on B.
    alice_since = (await sync(b, at))["next_batch"]

    async def account_data():
        await ok(
            a,
            "PUT",
            f"/_matrix/client/v3/user/{alice_path}/account_data/org.example.setting",
            at,
            {"set": "on a"},
        )

    await crosses(
        b,
        at,
        alice_since,
        account_data,
        lambda r: (
            {"type": "org.example.setting", "content": {"set": "on a"}}
            in r.get("account_data", {}).get("events", [])
        ),
    )
