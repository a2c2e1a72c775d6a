"""The legacy event stream (GET /events): everything since a token, as one flat list.

Older clients (and SyTest) still read this instead of /sync. Its tokens are
sync tokens (homeserver/sync/token.py), so a token from /sync, /initialSync
or a room initialSync works as `from`, and `end` works as a /sync `since`.

A response holds, oldest first, the events of the user's rooms that they may
see (history visibility), in the legacy format (legacy_format.py), and then what the /sync providers for account data,
typing, receipts and presence report for the same range, flattened: room
account data and ephemeral events carry their `room_id`, and presence
content carries its `user_id`, as Synapse gives them. `limit` caps the room
events only; when it cuts them short, `end` stops at the last one returned
so the next request carries on from there.

Two forms, as in Synapse:

- the user's stream: the rooms they are joined to, and those whose membership
  of theirs changed in the range (so a leave or an invite shows up);
- a peek, `room_id` of a room the user has not joined: that room alone, which
  must be world_readable; its ephemeral events and its members' presence.
  Guests have only this form (and `room_id` of a room they joined).

With nothing to report, a request waits up to `timeout` for the notifier to
say that something concerning the user or those rooms moved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from homeserver.errors import forbidden, missing_param, not_found
from homeserver.notifier import Notifier
from homeserver.requester import Requester
from homeserver.rooms.format import EventFormatter
from homeserver.rooms.visibility import WORLD_READABLE, HistoryVisibility
from homeserver.sync.legacy_format import clients_v1
from homeserver.sync.response import SyncRequest
from homeserver.sync.service import MAX_TIMEOUT_MS, SyncActivity, SyncProvider
from homeserver.sync.token import STREAMS, SyncToken
from storage.event_stream import EventStreamStore
from storage.events import EventStore, StoredEvent
from storage.rooms import RoomStore
from storage.sync import SyncStore


def flatten(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-timeline parts of a /sync response as legacy stream events."""
    chunk: list[dict[str, Any]] = list(response.get("account_data", {}).get("events", []))
    for room_id, entry in response.get("rooms", {}).get("join", {}).items():
        for section in ("account_data", "ephemeral"):
            chunk.extend(
                {**event, "room_id": room_id} for event in entry.get(section, {}).get("events", [])
            )
    chunk.extend(legacy_presence(e) for e in response.get("presence", {}).get("events", []))
    return chunk


def legacy_presence(event: dict[str, Any]) -> dict[str, Any]:
    """A /sync m.presence event as the legacy APIs give it: with content.user_id."""
    return {**event, "content": {**event["content"], "user_id": event["sender"]}}


class EventStream:
    def __init__(
        self,
        notifier: Notifier,
        memberships: SyncStore,
        store: EventStreamStore,
        events: EventStore,
        rooms: RoomStore,
        visibility: HistoryVisibility,
        formatter: EventFormatter,
        providers: Sequence[SyncProvider],
        activity: SyncActivity | None = None,
    ) -> None:
        self._notifier = notifier
        self._memberships = memberships
        self._store = store
        self._events = events
        self._rooms = rooms
        self._visibility = visibility
        self._formatter = formatter
        # The /sync providers of the non-timeline parts (account data,
        # typing, receipts, presence), reused as they are.
        self._providers = providers
        self._activity = activity

    def current_token(self) -> SyncToken:
        return SyncToken({s: self._notifier.positions.get(s, 0) for s in STREAMS})

    async def stream(
        self,
        requester: Requester,
        *,
        from_token: SyncToken | None,
        timeout_ms: int,
        limit: int,
        room_id: str | None,
    ) -> dict[str, Any]:
        """{"chunk", "start", "end"}: what happened after `from_token` (now if None).

        Guests read rooms only (as in Synapse): 400 without `room_id`.
        """
        if requester.is_guest and room_id is None:
            raise missing_param("Guest users must name a room_id")
        peek = room_id is not None and await self._peek(requester.user_id, room_id)
        # As in Synapse, a user's own stream keeps them online; guests and peeks do not.
        activity: AbstractAsyncContextManager[None] = (
            self._activity.syncing(requester.user_id, "online")
            if self._activity is not None and not requester.is_guest and not peek
            else nullcontext()
        )
        async with activity:
            return await self._respond(
                requester,
                from_token or self.current_token(),
                timeout_ms,
                limit,
                room_id if peek else None,
            )

    async def event(self, requester: Requester, event_id: str) -> StoredEvent:
        """One event of any room, if the user may see it (404 otherwise, so
        that events the user may not see are not told apart from unknown ones)."""
        stored = (await self._events.get_events([event_id])).get(event_id)
        if stored is None or not await self._visibility.visible(requester.user_id, stored):
            raise not_found("Event not found")
        return stored

    async def _peek(self, user_id: str, room_id: str) -> bool:
        """Whether a request for `room_id` is a peek; 403 unless the user is
        joined or the room is world_readable."""
        membership, _ = await self._rooms.membership(room_id, user_id)
        if membership == "join":
            return False
        if await self._visibility.current(room_id) == WORLD_READABLE:
            return True
        if not await self._rooms.exists(room_id):
            raise not_found("Unknown room")
        raise forbidden("You are not allowed to read this room")

    async def _respond(
        self,
        requester: Requester,
        since: SyncToken,
        timeout_ms: int,
        limit: int,
        peek_room: str | None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + min(timeout_ms, MAX_TIMEOUT_MS) / 1000
        while True:
            now = self.current_token()
            rooms = (
                [peek_room]
                if peek_room is not None
                else await self._stream_rooms(requester.user_id, since["events"], now["events"])
            )
            chunk, end = await self._build(requester, since, now, limit, rooms, peek_room)
            remaining = deadline - time.monotonic()
            if chunk or remaining <= 0:
                return {"chunk": chunk, "start": str(since), "end": str(end)}
            await self._notifier.wait(requester.user_id, rooms, now.positions, remaining)
            if time.monotonic() >= deadline and not self._notifier.moved_since(now.positions):
                return {"chunk": [], "start": str(since), "end": str(now)}
            # Something moved: let the writes that caused it settle first.
            await asyncio.sleep(0)

    async def _stream_rooms(self, user_id: str, since: int, now: int) -> list[str]:
        """The rooms the user is joined to, and those whose membership of
        theirs changed in (since, now]."""
        return [
            m.room_id
            for m in await self._memberships.memberships(user_id, since, now)
            if m.membership == "join" or m.stream_ordering > since
        ]

    async def _build(
        self,
        requester: Requester,
        since: SyncToken,
        now: SyncToken,
        limit: int,
        rooms: list[str],
        peek_room: str | None,
    ) -> tuple[list[dict[str, Any]], SyncToken]:
        rows = await self._store.room_events(rooms, since["events"], now["events"], limit)
        end = now
        if len(rows) >= limit > 0:
            end = SyncToken({**now.positions, "events": rows[-1][1]})
        loaded = await self._events.get_events(i for i, _ in rows)
        visible = await self._visibility.filter(
            requester.user_id, [loaded[i] for i, _ in rows if i in loaded]
        )
        chunk = clients_v1(await self._formatter.serialize(visible, requester))
        request = SyncRequest(
            requester,
            since,
            now,
            {},
            False,
            "online",
            peek_rooms=(peek_room,) if peek_room is not None else None,
        )
        response: dict[str, Any] = {}
        for provider in self._providers:
            await provider.add(request, response)
        chunk.extend(flatten(response))
        return chunk, end
