"""GET /notifications: the events a user was notified of, newest first
(spec: client-server API, "Listing Notifications").

The list is the notification rows the push rules produced (notifications.py).
The pagination token is the stream position of the last one returned; a
notification is read when the user's read receipt for its thread (or an
unthreaded one) is at or after it, as the unread counts reckon.
"""

from __future__ import annotations

import json
from typing import Any, Final

from homeserver.push.counts import ReadPositions, read_up_to
from homeserver.requester import Requester
from homeserver.rooms.format import EventFormatter
from storage.events import EventStore
from storage.push import MAIN_THREAD
from storage.pushers import PusherStore

MAX_LIMIT: Final = 500


class NotificationList:
    def __init__(
        self,
        store: PusherStore,
        events: EventStore,
        receipts: ReadPositions,
        formatter: EventFormatter,
    ) -> None:
        self._store = store
        self._events = events
        self._receipts = receipts
        self._formatter = formatter

    async def page(
        self, requester: Requester, before: int | None, limit: int, only_highlight: bool
    ) -> dict[str, Any]:
        """Up to `limit` (at most MAX_LIMIT) notifications older than the
        token `before`; `next_token` only when there may be more."""
        limit = min(limit, MAX_LIMIT)
        user_id = requester.user_id
        rows = await self._store.notifications(user_id, before, limit + 1, only_highlight)
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1].stream_ordering if rows else None
        stored = await self._events.get_events(r.event_id for r in rows)
        rows = [r for r in rows if r.event_id in stored]
        formatted = await self._formatter.serialize([stored[r.event_id] for r in rows], requester)
        positions = await self._receipts.thread_read_streams(
            user_id, sorted({r.room_id for r in rows})
        )
        notifications = []
        for row, event in zip(rows, formatted, strict=True):
            event.pop("room_id", None)
            read = read_up_to(positions.get(row.room_id, {}))
            upto = (
                read.main
                if row.thread_id == MAIN_THREAD
                else read.threads.get(row.thread_id, read.unthreaded)
            )
            notifications.append(
                {
                    "actions": json.loads(row.actions_json),
                    "event": event,
                    # Push rules here have no profile tag: null, as Synapse
                    # sends it and SyTest requires the key (the spec's schema
                    # has a string or nothing).
                    "profile_tag": None,
                    "read": row.stream_ordering <= upto,
                    "room_id": row.room_id,
                    "ts": row.ts,
                }
            )
        body: dict[str, Any] = {"notifications": notifications}
        if more and last is not None:
            body["next_token"] = str(last)
        return body
