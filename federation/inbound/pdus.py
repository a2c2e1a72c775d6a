"""One PDU of a transaction, through the spec's checklist ("Checks performed
on receipt of a PDU"):

1. the room is one we are in, and the origin passes its server ACL;
2. format, signatures and content hash (checks.py: a hash mismatch redacts);
3. auth events we lack are fetched and stored as outliers (gaps.py);
4. prev events we lack are asked for with /get_missing_events and handled
   first, oldest first; across a larger gap the state at each missing prev
   event comes from /state_ids;
5. the pipeline authorises it against its auth events, the state before it
   and the current state, and stores it accepted, rejected or soft-failed.

A problem with one PDU is its own answer and never fails the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from federation.inbound.checks import checked_event
from federation.inbound.fetching import RemoteEvents
from federation.inbound.gaps import GapFiller
from federation.keys import KeyRing
from federation.serving import FederationReads
from homeserver.errors import MatrixError
from homeserver.events.errors import InvalidEventError
from homeserver.events.event import Event
from homeserver.events.hashing import compute_event_id
from homeserver.events.room_versions import RoomVersion
from homeserver.rooms.pipeline import EventPipeline
from homeserver.strict_json import holds_nul
from storage.events import EventStore
from storage.federation_reads import FederationReadStore
from storage.state import StateMap

log = logging.getLogger(__name__)

# How many events one /get_missing_events may bring back (spec's example: 10).
MISSING_EVENTS_LIMIT = 10


@attrs.frozen
class PduResult:
    event_id: str | None
    error: str | None = None


class PduProcessor:
    def __init__(
        self,
        events: EventStore,
        reads: FederationReads,
        read_store: FederationReadStore,
        pipeline: EventPipeline,
        keys: KeyRing,
        remote: RemoteEvents,
        *,
        server_name: str,
    ) -> None:
        self._events = events
        self._reads = reads
        self._read_store = read_store
        self._pipeline = pipeline
        self._keys = keys
        self._remote = remote
        self._gaps = GapFiller(events, pipeline, remote)
        self._server_name = server_name

    async def process(self, origin: str, pdu: Any) -> PduResult:
        """Handle one PDU of `origin`'s transaction; the result is its answer."""
        if not isinstance(pdu, Mapping):
            return PduResult(None, "a PDU must be a JSON object")
        room_id = pdu.get("room_id")
        room_version = (
            await self._events.room_version(room_id) if isinstance(room_id, str) else None
        )
        if room_version is None:
            return PduResult(None, "this server is not in the room")
        try:
            event_id = compute_event_id(pdu, room_version)
        except (ValueError, TypeError):
            return PduResult(None, "the PDU has no valid event id")
        if holds_nul(pdu):
            # Its strings could not be stored (PostgreSQL text holds no NUL).
            return PduResult(event_id, "the event holds a NUL character")
        try:
            return PduResult(event_id, await self._process(origin, pdu, room_id, room_version))
        except Exception:
            # A bug or a database hiccup with one PDU must not fail the
            # others, nor block the origin's transactions.
            log.exception("PDU %s from %s failed", event_id, origin)
            return PduResult(event_id, "the event could not be processed")

    async def _process(
        self, origin: str, pdu: Mapping[str, Any], room_id: str, room_version: RoomVersion
    ) -> str | None:
        if not await self._read_store.server_in_room(room_id, self._server_name):
            return "this server is not in the room"
        try:
            await self._reads.check_acl(origin, room_id)
        except MatrixError as e:
            return e.message
        try:
            event = await checked_event(self._keys, pdu, room_version)
        except InvalidEventError as e:
            return f"invalid event: {e}"
        return await self._handle(origin, event, fetch_missing=True)

    async def _handle(self, origin: str, event: Event, *, fetch_missing: bool) -> str | None:
        """Store an event that passed the first checks; the error, if any."""
        known = (await self._events.get_events([event.event_id])).get(event.event_id)
        if known is not None and known.state_group is not None:
            return _outcome(known.rejected_reason)
        await self._gaps.auth_events(origin, event)
        missing = await self._missing_prevs(event)
        if missing and fetch_missing:
            await self._fetch_missing(origin, event)
            missing = await self._missing_prevs(event)
        prev_states: dict[str, StateMap] = {}
        for prev_id in missing:
            state = await self._gaps.state_after(origin, event.room_version, event.room_id, prev_id)
            if state is None:
                return f"the state at prev event {prev_id} could not be had"
            prev_states[prev_id] = state
        try:
            reception = await self._pipeline.receive_remote(event, prev_states=prev_states)
        except MatrixError as e:
            return e.message
        return _outcome(reception.rejected_reason)

    async def _missing_prevs(self, event: Event) -> list[str]:
        """The prev events we have no state at (unknown, or known as outliers)."""
        known = await self._events.get_events(event.prev_event_ids)
        return [
            i
            for i in dict.fromkeys(event.prev_event_ids)
            if i not in known or known[i].state_group is None
        ]

    async def _fetch_missing(self, origin: str, event: Event) -> None:
        """Ask the origin for the events between our forward extremities and
        `event`, and handle them oldest first (without asking again for theirs)."""
        extremities = await self._read_store.extremities(event.room_id)
        found = await self._remote.missing_events(
            origin,
            event.room_version,
            event.room_id,
            earliest=[e for e, _ in extremities],
            latest=[event.event_id],
            limit=MISSING_EVENTS_LIMIT,
            min_depth=min((d for _, d in extremities), default=0),
        )
        for missing in found:
            if missing.event_id == event.event_id:
                continue
            error = await self._handle(origin, missing, fetch_missing=False)
            if error is not None:
                log.info("missing event %s from %s: %s", missing.event_id, origin, error)


def _outcome(rejected_reason: str | None) -> str | None:
    """The per-PDU answer: accepted and soft-failed events are fine to the
    sender (soft failure is our view of the room, not its fault); a rejected
    one gets its reason."""
    if rejected_reason is not None:
        return f"rejected: {rejected_reason}"
    return None
