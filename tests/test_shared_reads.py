"""The reads shared by the /syncs of one event stream position
(homeserver/sync/shared_reads.py) while the position moves under them: the
callers of the earlier position still get their answers (a KeyError here
was a 500 for /sync under SyTest's load)."""

from __future__ import annotations

import asyncio
from typing import Any

from homeserver.notifier import Notifier
from homeserver.sync.shared_reads import SharedReads
from storage.history import TimelineQuery
from storage.sync import TimelineRange


class SlowStore:
    """Answers every read once `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.reads = 0

    async def timelines(self, ranges: Any, query: Any, ignored: Any) -> dict[str, Any]:
        self.reads += 1
        await self.release.wait()
        return {r.room_id: f"rows of {r.room_id} to {r.hi}" for r in ranges}

    async def redactions_of(self, event_ids: Any) -> dict[str, str]:
        self.reads += 1
        await self.release.wait()
        return {i: f"redaction of {i}" for i in event_ids}


async def test_reads_in_flight_survive_a_move_of_the_position():
    notifier = Notifier()
    notifier.notify("events", 10)
    store = SlowStore()
    shared = SharedReads(store, store, notifier)  # type: ignore[arg-type]
    ranges = [TimelineRange("!a:x", 5, 10, 10), TimelineRange("!b:x", 5, 10, 10)]
    first = asyncio.create_task(shared.timelines(ranges, TimelineQuery(), ()))
    second = asyncio.create_task(shared.timelines(ranges, TimelineQuery(), ()))
    redacted = asyncio.create_task(shared.redactions_of(["$e", "$f"]))
    await asyncio.sleep(0)
    # The position moves while the reads are in flight; a caller at the new
    # position starts afresh.
    notifier.notify("events", 11)
    third = asyncio.create_task(shared.redactions_of(["$e"]))
    fourth = asyncio.create_task(shared.timelines(ranges[:1], TimelineQuery(), ()))
    await asyncio.sleep(0)
    store.release.set()
    both = {"!a:x": "rows of !a:x to 10", "!b:x": "rows of !b:x to 10"}
    assert await first == both
    assert await second == both
    assert await redacted == {"$e": "redaction of $e", "$f": "redaction of $f"}
    assert await third == {"$e": "redaction of $e"}
    assert await fourth == {"!a:x": "rows of !a:x to 10"}
    # One read of each kind per position.
    assert store.reads == 4
