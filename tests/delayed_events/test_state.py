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


async def test_overwritten_state_is_not_sent_even_if_the_cancel_was_missed(
    hs: RunningServer,
) -> None:
    """The process stopped between another user's state change and the
    cancelling of the delayed state it overwrote: at sending time the
    delayed state event is cancelled all the same, by the send action and
    by the scheduler."""
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room(
        preset="public_chat", power_level_content_override={"state_default": 0}
    )
    await bob.join(room)
    await alice.set_state(room, CALL, "by_action", {"v": "alice"})
    _, by_action = await alice.state_later(room, CALL, "by_action", {"v": "later"}, 60_000)
    _, by_time = await alice.state_later(room, CALL, "by_time", {"v": "later"}, 60_000)
    await bob.set_state(room, CALL, "by_action", {"v": "bob"})
    await bob.set_state(room, CALL, "by_time", {"v": "bob"})
    # What a stop before the commit hook ran leaves: still scheduled.
    missed = [by_action["delay_id"], by_time["delay_id"]]
    await hs.pool.execute(
        """UPDATE delayed_events SET status = 'scheduled', finalised_ts = NULL, reason = NULL
           WHERE delay_id = ANY($1::text[])""",
        missed,
    )
    assert len((await alice.lookup())["delayed_events"]) == 2

    status, err = await alice.act(by_action["delay_id"], "send")
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    await hs.pool.execute(
        "UPDATE delayed_events SET send_ts = 0 WHERE delay_id = $1", by_time["delay_id"]
    )
    # Scheduling anything wakes the scheduler, which finds the other one due.
    await alice.send_later(room, "wake up", 60_000)

    async def both_cancelled() -> bool:
        finalised = (await alice.lookup("?status=finalised"))["finalised"]
        return sorted(
            f["delayed_event"]["delay_id"] for f in finalised if f["outcome"] == "cancel"
        ) == sorted(missed)

    assert await wait_for(both_cancelled)
    for key in ("by_action", "by_time"):
        assert (await alice.state(room, CALL, key))[1] == {"v": "bob"}
