"""Thread subscriptions (MSC4306) and their changes as clients sync them (MSC4308).

A user subscribes to the threads they care about; the push rules then notify
them of every message in those threads and of none in the others (see
homeserver/push). Subscriptions move on the account data stream, so a change
wakes the user's long polls and sliding sync carries it in the
`thread_subscriptions` extension; `/thread_subscriptions` pages back through
what a sliding sync response left out.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import attrs

from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.identifiers import is_valid_room_id
from homeserver.notifier import Notifier
from homeserver.rooms.visibility import HistoryVisibility
from storage.events import EventStore, RoomWriter, StoredEvent
from storage.thread_subscriptions import Conflict, ThreadSubscription, ThreadSubscriptionStore

# The error codes of Synapse, which clients (matrix-rust-sdk) match on.
NOT_IN_THREAD = "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD"
CONFLICTING_UNSUBSCRIPTION = "IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION"
# A paging token: "tsub<upper>_<lower>", the range (lower, upper] of account
# data stream positions still to page through, newest first.
_TOKEN = re.compile(r"tsub(\d{1,18})_(\d{1,18})")
# A sliding sync `pos` (homeserver/sliding_sync/service.py), which MSC4308
# allows as `to`: the lower bound then comes from `from`.
_POS = re.compile(r"s\d{1,19}_\d{1,18}")


@attrs.frozen
class Page:
    subscriptions: list[ThreadSubscription]
    # Where the next page starts, when this one may not be the last.
    next_token: str | None


def page_token(upper: int, lower: int) -> str:
    return f"tsub{upper}_{lower}"


def shape_changes(changes: Collection[ThreadSubscription]) -> dict[str, Any]:
    """The `subscribed` / `unsubscribed` maps of MSC4308 (absent when empty);
    `bump_stamp` is the change's stream position."""
    subscribed: dict[str, dict[str, Any]] = {}
    unsubscribed: dict[str, dict[str, Any]] = {}
    for change in changes:
        if change.subscribed:
            subscribed.setdefault(change.room_id, {})[change.thread_root_id] = {
                "automatic": change.automatic,
                "bump_stamp": change.stream_id,
            }
        else:
            unsubscribed.setdefault(change.room_id, {})[change.thread_root_id] = {
                "bump_stamp": change.stream_id
            }
    result: dict[str, Any] = {}
    if subscribed:
        result["subscribed"] = subscribed
    if unsubscribed:
        result["unsubscribed"] = unsubscribed
    return result


def _check_ids(room_id: str, thread_root_id: str) -> None:
    if not is_valid_room_id(room_id):
        raise invalid_param("Invalid room id")
    if not thread_root_id.startswith("$") or len(thread_root_id) > 255:
        raise invalid_param("Invalid thread root event id")


def _thread_of(stored: StoredEvent) -> str | None:
    relates = stored.event.content.get("m.relates_to")
    if isinstance(relates, dict) and relates.get("rel_type") == "m.thread":
        parent = relates.get("event_id")
        return parent if isinstance(parent, str) else None
    return None


class ThreadSubscriptions:
    def __init__(
        self,
        store: ThreadSubscriptionStore,
        events: EventStore,
        visibility: HistoryVisibility,
        notifier: Notifier,
    ) -> None:
        self._store = store
        self._events = events
        self._visibility = visibility
        self._notifier = notifier

    async def _visible(self, user_id: str, room_id: str, event_id: str) -> StoredEvent | None:
        stored = (await self._events.get_events([event_id])).get(event_id)
        if stored is None or stored.event.room_id != room_id:
            return None
        return await self._visibility.as_seen(user_id, stored)

    async def _thread_root(self, user_id: str, room_id: str, thread_root_id: str) -> None:
        """404 unless the thread root exists and the user may see it (MSC4306)."""
        _check_ids(room_id, thread_root_id)
        if await self._visible(user_id, room_id, thread_root_id) is None:
            raise not_found("No such thread root")

    async def get(self, user_id: str, room_id: str, thread_root_id: str) -> dict[str, Any]:
        await self._thread_root(user_id, room_id, thread_root_id)
        found = await self._store.get(user_id, room_id, thread_root_id)
        if found is None or not found.subscribed:
            raise not_found("Not subscribed to this thread")
        return {"automatic": found.automatic}

    async def subscribe(
        self, user_id: str, room_id: str, thread_root_id: str, cause_event_id: str | None
    ) -> None:
        """Subscribe manually, or automatically because of `cause_event_id` (an
        event of the thread that mentions the user)."""
        await self._thread_root(user_id, room_id, thread_root_id)
        cause_stream = None
        if cause_event_id is not None:
            cause = await self._visible(user_id, room_id, cause_event_id)
            if cause is None:
                raise not_found("No such cause event")
            if _thread_of(cause) != thread_root_id:
                raise MatrixError(
                    400, NOT_IN_THREAD, "An automatic subscription must name an event of the thread"
                )
            cause_stream = cause.stream_ordering
        try:
            async with self._notifier.writing("account_data"):
                position = await self._store.subscribe(
                    user_id, room_id, thread_root_id, cause_stream
                )
        except Conflict:
            raise MatrixError(
                409,
                CONFLICTING_UNSUBSCRIPTION,
                "The user unsubscribed from this thread after its cause event",
            ) from None
        if position is not None:
            self._notifier.notify("account_data", position, users=[user_id])

    async def unsubscribe(self, user_id: str, room_id: str, thread_root_id: str) -> None:
        await self._thread_root(user_id, room_id, thread_root_id)
        # Every event received so far counts as seen by the unsubscription: an
        # automatic subscription they cause later is refused (MSC4306).
        events_position = self._notifier.positions.get("events", 0)
        async with self._notifier.writing("account_data"):
            position = await self._store.unsubscribe(
                user_id, room_id, thread_root_id, events_position
            )
        if position is not None:
            self._notifier.notify("account_data", position, users=[user_id])

    async def changes(self, user_id: str, after: int, upto: int, limit: int) -> Page:
        """The latest `limit` changes in (after, upto], with the token of the
        older ones when there may be more."""
        found = await self._store.changed_between(user_id, after, upto, limit)
        more = len(found) == limit and found[0].stream_id - 1 > after
        return Page(found, page_token(found[0].stream_id - 1, after) if more else None)

    async def page(
        self, user_id: str, from_token: str | None, to_token: str | None, limit: int
    ) -> dict[str, Any]:
        """`GET /thread_subscriptions` (MSC4308): newest first, from `from`
        (default: now) back to `to` (default: the beginning)."""
        upper = self._notifier.positions.get("account_data", 0)
        lower = 0
        if from_token is not None:
            match = _TOKEN.fullmatch(from_token)
            if match is None:
                raise invalid_param("'from' is not a valid token")
            upper, lower = int(match.group(1)), int(match.group(2))
        if to_token is not None:
            match = _TOKEN.fullmatch(to_token)
            if match is not None:
                lower = max(lower, int(match.group(1)))
            elif _POS.fullmatch(to_token) is None:
                raise invalid_param("'to' is not a valid token")
        page = await self.changes(user_id, lower, upper, limit)
        result = shape_changes(page.subscriptions)
        if page.next_token is not None:
            result["end"] = page.next_token
        return result

    async def subscribers(
        self,
        room_id: str,
        thread_root_id: str,
        user_ids: Collection[str] | None,
        writer: RoomWriter | None = None,
    ) -> frozenset[str]:
        """Those of `user_ids` (None: of anyone) subscribed to the thread;
        `writer`: inside a room writer's transaction, the writer."""
        conn = writer.conn if writer is not None else None
        return await self._store.subscribers(room_id, thread_root_id, user_ids, conn)
