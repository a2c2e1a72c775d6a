"""Answers to other servers' reads of our rooms: events, state, auth chains,
backfill and missing events.

Every room-scoped read first checks that the asking server may see the room:
it passes the room's server ACL, and it has a joined member or the room's
history is world_readable. Events go out as PDUs, exactly as signed (redacted
when a valid redaction applies), never in the client format. As in Synapse,
history walks (backfill, missing events) send the events of erased senders
redacted, unless a legal hold covers them (storage/erasure.py): the receiver's
content hash check then fails and it keeps them redacted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from federation.acl import server_allowed
from homeserver.errors import MatrixError, forbidden, not_found
from homeserver.events.redaction import redact
from homeserver.events.room_versions import RoomVersion
from homeserver.rooms.visibility import HISTORY_VISIBILITY_KEY, WORLD_READABLE, visibility_of
from storage.database import now_ms
from storage.erasure import ErasureStore
from storage.events import EventStore, StoredEvent
from storage.federation_reads import FederationReadStore
from storage.state import StateKey, StateMap, StateStore

SERVER_ACL_KEY: StateKey = ("m.room.server_acl", "")
MAX_BACKFILL = 100
MAX_MISSING_EVENTS = 20


class FederationReads:
    def __init__(
        self,
        events: EventStore,
        state: StateStore,
        reads: FederationReadStore,
        *,
        server_name: str,
        erasure: ErasureStore,
    ) -> None:
        self._events = events
        self._state = state
        self._reads = reads
        self._erasure = erasure
        self._server_name = server_name

    async def check_room_access(self, origin: str, room_id: str) -> RoomVersion:
        """The room's version, if `origin` may read the room; 404/403 otherwise."""
        room_version = await self._events.room_version(room_id)
        if room_version is None:
            raise not_found("Unknown room")
        await self.check_acl(origin, room_id)
        if await self._reads.server_in_room(room_id, origin):
            return room_version
        event_id = await self._events.current_state_event_id(room_id, *HISTORY_VISIBILITY_KEY)
        setting = (await self._events.get_events([event_id])).get(event_id) if event_id else None
        if visibility_of(setting.event.content if setting else None) == WORLD_READABLE:
            return room_version
        raise forbidden(f"{origin} is not in room {room_id}")

    async def check_acl(self, origin: str, room_id: str) -> None:
        """403 if the room's server ACL bans `origin`."""
        event_id = await self._events.current_state_event_id(room_id, *SERVER_ACL_KEY)
        if event_id is None:
            return
        acl = (await self._events.get_events([event_id])).get(event_id)
        if acl is not None and not server_allowed(origin, acl.event.content):
            raise forbidden(f"{origin} is denied by the room's server ACL")

    async def pdus(self, event_ids: Iterable[str], *, erase: bool = False) -> list[dict[str, Any]]:
        """The PDUs of the accepted events among `event_ids`, in that order;
        with `erase`, erased senders' events redacted."""
        ids = list(dict.fromkeys(event_ids))
        found = await self._events.get_events(ids)
        redacted = set(await self._events.redactions_of(ids))
        if erase:
            erased = await self._erasure.erased(
                (s.event.room_id, s.event.sender) for s in found.values()
            )
            redacted |= {i for i, s in found.items() if (s.event.room_id, s.event.sender) in erased}
        return [
            self._pdu(found[i], i in redacted)
            for i in ids
            if i in found and found[i].rejected_reason is None
        ]

    @staticmethod
    def _pdu(stored: StoredEvent, redacted: bool) -> dict[str, Any]:
        event = stored.event
        pdu = {k: v for k, v in event.pdu.items() if k != "unsigned"}
        return redact(pdu, event.room_version) if redacted else pdu

    def _transaction(self, pdus: list[dict[str, Any]]) -> dict[str, Any]:
        return {"origin": self._server_name, "origin_server_ts": now_ms(), "pdus": pdus}

    async def _event_in_room(self, room_id: str | None, event_id: str) -> StoredEvent:
        stored = (await self._events.get_events([event_id])).get(event_id)
        if (
            stored is None
            or stored.rejected_reason is not None
            or (room_id is not None and stored.event.room_id != room_id)
        ):
            raise not_found("Unknown event")
        return stored

    async def event(self, origin: str, event_id: str) -> dict[str, Any]:
        stored = await self._event_in_room(None, event_id)
        await self.check_room_access(origin, stored.event.room_id)
        return self._transaction(await self.pdus([event_id]))

    async def state_before(self, room_id: str, event_id: str) -> StateMap:
        """The room state just before `event_id` (its own state change undone)."""
        stored = await self._event_in_room(room_id, event_id)
        if stored.state_group is None:
            raise MatrixError(404, "M_NOT_FOUND", "No state is known at this event")
        state = await self._state.state_of_group(stored.state_group)
        event = stored.event
        if event.state_key is not None:
            key = (event.type, event.state_key)
            if stored.replaces_state is not None:
                state[key] = stored.replaces_state
            elif state.get(key) == event.event_id:
                del state[key]
        return state

    async def auth_chain(
        self, room_version: RoomVersion, room_id: str, event_ids: Iterable[str]
    ) -> set[str]:
        """The auth chain of `event_ids`. From room 12 the create event is in no
        auth_events (the room id names it), yet every receiver needs it: add it."""
        event_ids = list(event_ids)
        if not event_ids:
            return set()
        chain = await self._reads.auth_chain_ids(event_ids)
        if room_version.room_id_from_create_event:
            chain.add("$" + room_id[1:])
        return chain

    async def state_ids(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        room_version = await self.check_room_access(origin, room_id)
        state = await self.state_before(room_id, event_id)
        chain = await self.auth_chain(room_version, room_id, state.values())
        return {"pdu_ids": sorted(state.values()), "auth_chain_ids": sorted(chain)}

    async def state(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        room_version = await self.check_room_access(origin, room_id)
        state = await self.state_before(room_id, event_id)
        chain = await self.auth_chain(room_version, room_id, state.values())
        return {
            "pdus": await self.pdus(sorted(state.values())),
            "auth_chain": await self.pdus(sorted(chain)),
        }

    async def event_auth(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        room_version = await self.check_room_access(origin, room_id)
        stored = await self._event_in_room(room_id, event_id)
        chain = await self.auth_chain(room_version, room_id, [event_id])
        chain.discard(stored.event.event_id)
        return {"auth_chain": await self.pdus(sorted(chain))}

    async def backfill(
        self, origin: str, room_id: str, from_ids: list[str], limit: int
    ) -> dict[str, Any]:
        await self.check_room_access(origin, room_id)
        if not from_ids:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing v")
        if limit < 1:
            raise MatrixError(400, "M_INVALID_PARAM", "limit must be positive")
        ids = await self._reads.backfill_ids(room_id, from_ids, min(limit, MAX_BACKFILL))
        return self._transaction(await self.pdus(ids, erase=True))

    async def missing_events(
        self,
        origin: str,
        room_id: str,
        *,
        earliest: list[str],
        latest: list[str],
        limit: int,
        min_depth: int,
    ) -> dict[str, Any]:
        await self.check_room_access(origin, room_id)
        ids = await self._reads.missing_event_ids(
            room_id, earliest, latest, max(0, min(limit, MAX_MISSING_EVENTS)), min_depth
        )
        return {"events": await self.pdus(ids, erase=True)}
