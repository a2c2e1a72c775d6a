"""Filling what an incoming event needs before it can be checked: its auth
events, and the state at prev events this server does not have.

Auth events come from /event_auth (or one by one from /event) and are stored
as outliers after passing the auth rules against their own auth events. For
a prev event we cannot get through /get_missing_events (a gap too large), the
state before it comes from /state_ids, the events we lack from /event, and
the state after it is that state plus the prev event itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from federation.inbound.fetching import RemoteEvents
from homeserver.events.event import Event
from homeserver.events.room_versions import RoomVersion
from homeserver.rooms.pipeline import EventPipeline
from storage.events import EventStore
from storage.state import StateMap


class GapFiller:
    def __init__(self, events: EventStore, pipeline: EventPipeline, remote: RemoteEvents) -> None:
        self._events = events
        self._pipeline = pipeline
        self._remote = remote

    async def _unknown(self, event_ids: Iterable[str]) -> list[str]:
        ids = list(dict.fromkeys(event_ids))
        known = await self._events.get_events(ids)
        return [i for i in ids if i not in known]

    async def auth_events(self, origin: str, event: Event) -> None:
        """Fetch and store the auth events of `event` that we lack (and theirs).

        Whatever cannot be had leaves the event's auth events incomplete,
        and the pipeline then rejects it.
        """
        missing = await self._unknown(event.auth_event_ids)
        if not missing:
            return
        room_version, room_id = event.room_version, event.room_id
        chain = await self._remote.auth_chain(origin, room_version, room_id, event.event_id)
        if chain is None:
            chain = await self._remote.events(origin, room_version, room_id, missing)
            deeper = await self._unknown(
                a for e in chain for a in e.auth_event_ids if a not in {c.event_id for c in chain}
            )
            chain += await self._remote.events(origin, room_version, room_id, deeper)
        await self._pipeline.store_outliers(chain)

    async def state_after(
        self, origin: str, room_version: RoomVersion, room_id: str, prev_id: str
    ) -> StateMap | None:
        """The room state after `prev_id`, as the origin knows it; None if it
        could not be had."""
        ids = await self._remote.state_ids(origin, room_id, prev_id)
        if ids is None:
            return None
        wanted = await self._unknown([prev_id, *ids.state, *ids.auth_chain])
        fetched = await self._remote.events(origin, room_version, room_id, wanted)
        await self._pipeline.store_outliers(fetched)
        stored = await self._events.get_events([prev_id, *ids.state])
        if prev_id not in stored:
            return None
        state: StateMap = {}
        for event_id in ids.state:
            known = stored.get(event_id)
            if known is None or known.rejected_reason is not None:
                continue
            if known.event.state_key is not None:
                state[known.event.state_tuple] = event_id
        prev = stored[prev_id].event
        if prev.state_key is not None and stored[prev_id].rejected_reason is None:
            state[prev.state_tuple] = prev_id
        return state
