"""Unread notification counts in /sync.

Every joined room in the response gets `unread_notifications`: the
notifications (see notifications.py) after the user's latest m.read or
m.read.private receipt. With `unread_thread_notifications` in the room
timeline filter, those counts are the main timeline's only, and each thread
with unread notifications gets its own under `unread_thread_notifications`.

This provider runs after the rooms and receipts providers: a room is in the
response when it has new events (which is how counts go up) or when the
user's own receipt moved (which is how they go down).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from homeserver.sync.response import SyncRequest
from storage.push import MAIN_THREAD, PushStore, ReadUpTo

# Receipt thread keys (storage/receipts.py): '' unthreaded, 'main', or a root.
_UNTHREADED = ""
_MAIN = "main"


class ReadPositions(Protocol):
    """The receipts service: {room: {receipt thread key: stream_ordering read up to}}."""

    async def thread_read_streams(
        self, user_id: str, room_ids: list[str]
    ) -> dict[str, dict[str, int]]: ...


def read_up_to(positions: Mapping[str, int]) -> ReadUpTo:
    """Where a room is read up to, from the user's receipt positions by thread key."""
    unthreaded = positions.get(_UNTHREADED, 0)
    return ReadUpTo(
        unthreaded=unthreaded,
        main=max(unthreaded, positions.get(_MAIN, 0)),
        threads={
            thread: max(unthreaded, position)
            for thread, position in positions.items()
            if thread not in (_UNTHREADED, _MAIN) and position > unthreaded
        },
    )


def _counts(notifications: int, highlights: int) -> dict[str, int]:
    return {"notification_count": notifications, "highlight_count": highlights}


class UnreadCounts:
    """Fills in the unread counts of the joined rooms of a /sync response."""

    def __init__(self, store: PushStore, receipts: ReadPositions) -> None:
        self._store = store
        self._receipts = receipts

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
        joined: dict[str, Any] = response.get("rooms", {}).get("join", {})
        if not joined:
            return
        room_ids = list(joined)
        positions = await self._receipts.thread_read_streams(request.user_id, room_ids)
        read = {room: read_up_to(positions.get(room, {})) for room in room_ids}
        counts = await self._store.unread_counts(request.user_id, read, request.now["events"])
        timeline_filter = request.filter.get("room", {}).get("timeline", {})
        apart = timeline_filter.get("unread_thread_notifications") is True
        totals = {room: [0, 0] for room in room_ids}
        threads: dict[str, dict[str, dict[str, int]]] = {}
        for count in counts:
            if apart and count.thread_id != MAIN_THREAD:
                threads.setdefault(count.room_id, {})[count.thread_id] = _counts(
                    count.notifications, count.highlights
                )
                continue
            total = totals[count.room_id]
            total[0] += count.notifications
            total[1] += count.highlights
        for room_id, entry in joined.items():
            entry["unread_notifications"] = _counts(*totals[room_id])
            if room_id in threads:
                entry["unread_thread_notifications"] = threads[room_id]
