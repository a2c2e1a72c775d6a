"""A woken long poll: its position is stored while its rooms are built, and
the account data it read before parking is used again only while unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import RunningServer
from tests.sliding_sync.helpers import User, all_rooms, bodies, new_user


async def _parked(user: User, body: dict[str, Any], pos: str) -> asyncio.Task[dict[str, Any]]:
    poll = asyncio.create_task(user.sync_ok(body, pos=pos, wait_ms=10_000))
    await asyncio.sleep(0.2)
    assert not poll.done()
    return poll


async def test_each_woken_poll_gives_a_pos_that_resumes_after_what_it_sent(
    hs: RunningServer,
) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    other = await alice.create_room()
    first = await alice.sync_ok(all_rooms())
    seen = []
    pos = first["pos"]
    for n, target in enumerate((room, other, room)):
        poll = await _parked(alice, all_rooms(), pos)
        await alice.send(target, f"message {n}")
        woken = await asyncio.wait_for(poll, 5)
        # Only the new message, in its room, at the top of the list.
        assert list(woken["rooms"]) == [target]
        assert bodies(woken["rooms"][target]["timeline"]) == [f"message {n}"]
        seen.append(woken["pos"])
        pos = woken["pos"]
    assert len(set(seen)) == 3
    # Nothing new after the last one: its timeout answers with the same pos.
    quiet = await alice.sync_ok(all_rooms(), pos=pos, wait_ms=300)
    assert (quiet["rooms"], quiet["pos"]) == ({}, pos)
    # The positions before the one each poll used are gone.
    for old in (first["pos"], seen[0]):
        status, body = await alice.sliding(all_rooms(), pos=old)
        assert (status, body["errcode"]) == (400, "M_UNKNOWN_POS")


async def test_a_user_ignored_while_the_poll_waits_stays_out_of_it(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    body = all_rooms(limit=5)
    pos = (await alice.sync_ok(body))["pos"]
    # Woken once by a message (the account data read before parking is kept)...
    poll = await _parked(alice, body, pos)
    await bob.send(room, "before")
    woken = await asyncio.wait_for(poll, 5)
    assert bodies(woken["rooms"][room]["timeline"]) == ["before"]
    # ...then Bob is ignored while the next poll waits, and he speaks.
    poll = await _parked(alice, body, woken["pos"])
    await alice.call(
        "PUT",
        f"/_matrix/client/v3/user/{alice.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": {bob.user_id: {}}},
    )
    await bob.send(room, "hidden")
    await alice.send(room, "visible")
    got: list[str] = []
    while "visible" not in got:
        response = await asyncio.wait_for(poll, 5)
        got += bodies(response.get("rooms", {}).get(room, {}).get("timeline", []))
        poll = asyncio.create_task(alice.sync_ok(body, pos=response["pos"], wait_ms=10_000))
    poll.cancel()
    assert "hidden" not in got
