"""The event stream across two processes of one deployment (cluster mode):
a long poll parked on one process wakes at once for a message sent through
the other, and messages sent through both at once reach every /sync exactly
once, in stream order, with no gap, whichever process serves it."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.cluster.shared import (
    bodies,
    create_room,
    join,
    pair,
    parked,
    send,
    sync,
    sync_until,
    timed,
)
from tests.sliding_sync.helpers import User, all_rooms
from tests.sliding_sync.helpers import bodies as slid_bodies


async def test_a_send_on_one_process_wakes_a_poll_parked_on_the_other(server_factory: Any):
    a, b = await pair(server_factory)
    alice = await a.register("alice")
    token = alice["access_token"]
    room_id = await create_room(a, token)
    since = (await sync(b, token))["next_batch"]

    poll = asyncio.create_task(timed(sync(b, token, since, timeout_ms=20_000)))
    await parked(poll)
    await send(a, token, room_id, "hello from a")
    elapsed, response = await poll
    assert bodies(response, room_id) == ["hello from a"]
    assert elapsed < 2, elapsed  # woken, not timed out

    # And the other way round.
    poll = asyncio.create_task(timed(sync(a, token, response["next_batch"], timeout_ms=20_000)))
    await parked(poll)
    await send(b, token, room_id, "hello from b")
    elapsed, response = await poll
    assert bodies(response, room_id) == ["hello from b"]
    assert elapsed < 2, elapsed


async def test_concurrent_sends_through_both_arrive_once_in_order(server_factory: Any):
    a, b = await pair(server_factory)
    alice = await a.register("alice")
    bob = await b.register("bob")
    shared = await create_room(a, alice["access_token"], invite=[bob["user_id"]])
    await join(b, bob["access_token"], shared)
    own_a = await create_room(a, alice["access_token"], invite=[bob["user_id"]])
    await join(a, bob["access_token"], own_a)
    own_b = await create_room(b, bob["access_token"], invite=[alice["user_id"]])
    await join(b, alice["access_token"], own_b)
    # A hears of the joins made through B a moment later (read-your-writes
    # holds per process): the start token is one that has them all.
    first = await sync(a, alice["access_token"])
    if own_b not in first.get("rooms", {}).get("join", {}):
        first = await sync_until(
            a,
            alice["access_token"],
            first["next_batch"],
            lambda r: own_b in r.get("rooms", {}).get("join", {}),
        )
    start = first["next_batch"]

    rounds = 15
    sent: dict[str, list[str]] = {shared: [], own_a: [], own_b: []}

    async def sender(server, token, room_id, name):
        for i in range(rounds):
            body = f"{name} {i}"
            await send(server, token, room_id, body)
            sent[room_id].append(body)

    # Every process reads while both write: tokens gathered on the way.
    tokens = [start]

    async def reader(server, token):
        since = start
        while sum(map(len, sent.values())) < 4 * rounds:
            response = await sync(server, token, since, timeout_ms=500)
            since = response["next_batch"]
            tokens.append(since)

    await asyncio.gather(
        sender(a, alice["access_token"], shared, "alice@a"),
        sender(b, bob["access_token"], shared, "bob@b"),
        sender(a, alice["access_token"], own_a, "alice@a"),
        sender(b, bob["access_token"], own_b, "bob@b"),
        reader(a, alice["access_token"]),
        reader(b, alice["access_token"]),
    )

    # From every token, on either process, incremental syncs give each
    # message after it once, in each sender's order, with none missing.
    for server in (a, b):
        for since in tokens:
            seen: dict[str, list[str]] = {shared: [], own_a: [], own_b: []}
            position = since
            while True:
                response = await sync(server, alice["access_token"], position)
                for room_id in seen:
                    seen[room_id] += bodies(response, room_id)
                    room = response.get("rooms", {}).get("join", {}).get(room_id, {})
                    assert not room.get("timeline", {}).get("limited"), "a gap"
                if response["next_batch"] == position:
                    break
                position = response["next_batch"]
            for room_id, got in seen.items():
                assert len(got) == len(set(got)), ("twice", room_id, got)
                for name in ("alice@a", "bob@b"):
                    mine = [g for g in got if g.startswith(name)]
                    theirs = [m for m in sent[room_id] if m.startswith(name)]
                    # What follows the token: the end of what was sent, in order.
                    assert mine == theirs[len(theirs) - len(mine) :]
            if since == start:
                assert {r: sorted(v) for r, v in seen.items()} == {
                    r: sorted(v) for r, v in sent.items()
                }

    # The order of the timeline is the same everywhere (stream order).
    whole_a = await sync_until(a, alice["access_token"], start, lambda r: True)
    whole_b = await sync_until(b, alice["access_token"], start, lambda r: True)
    for room_id in sent:
        assert bodies(whole_a, room_id) == bodies(whole_b, room_id)


async def test_a_sliding_sync_poll_on_one_process_wakes_for_a_send_on_the_other(
    server_factory: Any,
):
    a, b = await pair(server_factory)
    body = await a.register("alice")
    on_a, on_b = User(a, body), User(b, body)
    room_id = await on_a.create_room()
    await on_a.send(room_id, "before")
    first = await on_b.sync_ok(all_rooms())
    if "before" not in slid_bodies(first["rooms"].get(room_id, {}).get("timeline", [])):
        first = await on_b.sync_ok(all_rooms(), pos=first["pos"], wait_ms=5_000)

    poll = asyncio.create_task(timed(on_b.sync_ok(all_rooms(), pos=first["pos"], wait_ms=20_000)))
    await parked(poll)
    await on_a.send(room_id, "slid across")
    elapsed, woken = await poll
    assert slid_bodies(woken["rooms"][room_id]["timeline"]) == ["slid across"]
    assert elapsed < 2, elapsed
