"""Delayed state events: sent as state, and cancelled when another user sets
the same state meanwhile (as Synapse does; the owner's own changes keep it,
which Element Call's delayed "leave" relies on)."""

from __future__ import annotations

from tests.conftest import RunningServer
from tests.delayed_events.helpers import new_user, wait_for

CALL = "org.example.call.member"


async def test_state_set_by_someone_else_cancels_it(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room(
        preset="public_chat", power_level_content_override={"state_default": 0}
    )
    await bob.join(room)
    status, overwritten = await alice.state_later(room, CALL, "shared", {"v": "alice"}, 60_000)
    assert status == 200, overwritten
    _, kept = await alice.state_later(room, CALL, "other", {"v": "alice"}, 60_000)
    _, own = await alice.state_later(room, CALL, "mine", {"v": "left"}, 300)

    await bob.set_state(room, CALL, "shared", {"v": "bob"})
    # Alice's own state change does not cancel her delayed state event.
    await alice.set_state(room, CALL, "mine", {"v": "joined"})

    async def cancelled() -> list:
        return [
            f
            for f in (await alice.lookup("?status=finalised"))["finalised"]
            if f["outcome"] == "cancel"
        ]

    [entry] = await wait_for(cancelled)
    assert entry["delayed_event"]["delay_id"] == overwritten["delay_id"]
    scheduled = {d["delay_id"] for d in (await alice.lookup())["delayed_events"]}
    assert kept["delay_id"] in scheduled and overwritten["delay_id"] not in scheduled
    # Bob's state stays; alice's "mine" becomes her delayed content on time.
    assert (await alice.state(room, CALL, "shared"))[1] == {"v": "bob"}

    async def left() -> bool:
        return (await alice.state(room, CALL, "mine"))[1] == {"v": "left"}

    assert await wait_for(left)
    # Cancelled, so retries of restart or send find nothing.
    status, err = await alice.act(overwritten["delay_id"], "restart")
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
