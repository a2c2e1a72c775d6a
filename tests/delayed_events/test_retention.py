"""Finalised delayed events are kept for a while (retried actions and look-ups
are answered from them), then forgotten: older than the retention, or beyond
the newest ones of each user."""

from __future__ import annotations

from storage.database import now_ms
from storage.delayed_events import DelayedEventStore
from tests.conftest import RunningServer
from tests.delayed_events.helpers import new_user


async def test_finalised_are_forgotten_by_age_and_count(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    ids = []
    for body in ("one", "two", "three"):
        _, scheduled = await alice.send_later(room, body, 60_000)
        assert await alice.act(scheduled["delay_id"], "cancel") == (200, {})
        ids.append(scheduled["delay_id"])
    _, kept = await alice.send_later(room, "scheduled", 60_000)
    store = DelayedEventStore(hs.pool)

    # Only the newest finalised one of the user stays.
    assert await store.purge_finalised(0, keep_per_user=1) == 2
    finalised = (await alice.lookup("?status=finalised"))["finalised"]
    assert [f["delayed_event"]["delay_id"] for f in finalised] == [ids[-1]]
    # A forgotten one is unknown now, even to a retry.
    status, err = await alice.act(ids[0], "cancel")
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")

    # By age: everything finalised before now goes; scheduled ones stay.
    assert await store.purge_finalised(now_ms() + 1, keep_per_user=1000) == 1
    listed = await alice.lookup()
    assert listed["finalised"] == []
    assert [d["delay_id"] for d in listed["delayed_events"]] == [kept["delay_id"]]
