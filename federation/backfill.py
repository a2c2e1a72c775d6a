"""Older history of a room from the other servers in it: GET /backfill.

A room joined through another server starts here with its state and our
join; the events before lie on the servers that were there. When a client
pages back past what we have, `FederationBackfill` asks the servers with
members in the room (the room's creator's server first, as it most likely
has all of it; never ourselves, and the transport skips servers it is
backing off from) for the events at and before the backward extremities,
one server after the other until one answers.

Every returned PDU goes through the checks of a PDU in a transaction
(federation/inbound: format, signatures, content hash, auth events fetched
and stored as outliers), oldest first, and the pipeline stores it as
history: authorised against its auth events and the state before it, at its
depth in the DAG, outside the live stream (`receive_backfilled`). The oldest
events of an answer, whose prev events we still lack, get the state before
them from /state_ids (gaps.py), a few per round. One round is bounded in
events, servers and time, and one runs per room at a time (a second page
asking meanwhile waits for it); failures are logged and leave the page as it
was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from federation.inbound.checks import checked_event
from federation.inbound.fetching import RemoteEvents
from federation.inbound.gaps import GapFiller
from federation.keys import KeyRing
from federation.transport import FederationClient, FederationError
from homeserver.errors import MatrixError
from homeserver.events.errors import InvalidEventError, SignatureError
from homeserver.events.event import Event
from homeserver.events.room_versions import RoomVersion
from homeserver.rooms.pipeline import EventPipeline
from storage.directory import DirectoryStore
from storage.events import EventStore
from storage.state import StateMap

log = logging.getLogger(__name__)

V1 = "/_matrix/federation/v1"
# Events asked for in one round (Synapse asks for 100).
BACKFILL_LIMIT = 100
# Servers tried in one round before the page is served as it is.
MAX_SERVERS = 3
# One server's answer, and the checking and storing of it.
REQUEST_TIMEOUT_S = 10.0
ROUND_TIMEOUT_S = 30.0
# /state_ids fetches for the oldest events of an answer, per round.
MAX_STATE_FETCHES = 5


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


class FederationBackfill:
    """The homeserver's `RemoteHistory` (homeserver/rooms/history.py)."""

    def __init__(
        self,
        client: Callable[[], FederationClient],
        keys: Callable[[], KeyRing],
        events: EventStore,
        directory: DirectoryStore,
        pipeline: EventPipeline,
        *,
        server_name: str,
    ) -> None:
        self._client = client
        self._keys = keys
        self._events = events
        self._directory = directory
        self._pipeline = pipeline
        self._server_name = server_name
        # Room id -> its round in progress.
        self._rounds: dict[str, asyncio.Task[int]] = {}

    async def backfill(self, room_id: str, extremities: Sequence[str]) -> int:
        """Ask the room's servers in turn for the history at and before
        `extremities` and store what passes the checks; how many events
        were stored (0 when nobody could answer, or a bug struck: the page
        is then served as it is).

        The round runs as its own task, shielded, so that a client going
        away does not abandon it halfway, and a page asking while it runs
        waits for it instead of asking again.
        """
        task = self._rounds.get(room_id)
        if task is None:
            task = asyncio.create_task(self._round(room_id, extremities))
            self._rounds[room_id] = task
            task.add_done_callback(lambda _: self._rounds.pop(room_id, None))
        return await asyncio.shield(task)

    async def _round(self, room_id: str, extremities: Sequence[str]) -> int:
        try:
            return await self._backfill(room_id, extremities)
        except Exception:
            log.exception("backfill of %s failed", room_id)
            return 0

    async def _backfill(self, room_id: str, extremities: Sequence[str]) -> int:
        room_version = await self._events.room_version(room_id)
        if room_version is None or not extremities:
            return 0
        servers = await self._servers(room_id)
        try:
            async with asyncio.timeout(ROUND_TIMEOUT_S):
                for server in servers[:MAX_SERVERS]:
                    pdus = await self._ask(server, room_id, extremities)
                    if pdus is not None:
                        return await self._store(server, room_version, room_id, pdus)
        except TimeoutError:
            log.info("backfill of %s timed out", room_id)
        return 0

    async def fetch_event(self, room_id: str, event_id: str, servers: Sequence[str]) -> bool:
        """Fetch one event of the room's history (GET /event) from the first of
        `servers` that has it, and store it as backfilled history (jump to
        date, as Synapse's backfill of one event); whether we have it now."""
        room_version = await self._events.room_version(room_id)
        if room_version is None:
            return False
        for server in servers[:MAX_SERVERS]:
            try:
                body = await self._client().get_json(
                    server, f"{V1}/event/{quote(event_id, safe='')}", timeout_s=REQUEST_TIMEOUT_S
                )
            except FederationError as e:
                log.info("fetching %s from %s failed: %s", event_id, server, e)
                continue
            pdus = body.get("pdus") if isinstance(body, dict) else None
            if not isinstance(pdus, list) or len(pdus) != 1:
                continue
            await self._store(server, room_version, room_id, pdus)
            known = (await self._events.get_events([event_id])).get(event_id)
            if known is not None and known.state_group is not None:
                return True
        return False

    async def servers(self, room_id: str) -> list[str]:
        """The other servers in the room, the most likely to have its history first."""
        return await self._servers(room_id)

    async def _servers(self, room_id: str) -> list[str]:
        """The servers with members in the room, its creator's server first."""
        joined = await self._directory.joined_servers(room_id)
        create_id = await self._events.current_state_event_id(room_id, "m.room.create", "")
        create = (await self._events.get_events([create_id])).get(create_id) if create_id else None
        first = [_server_of(create.event.sender)] if create is not None else []
        return [
            s for s in dict.fromkeys([*first, *joined]) if s != self._server_name and s in joined
        ]

    async def _ask(self, server: str, room_id: str, extremities: Sequence[str]) -> list[Any] | None:
        """GET /backfill: the answer's PDUs, or None if the server failed."""
        try:
            body = await self._client().get_json(
                server,
                f"{V1}/backfill/{quote(room_id, safe='')}",
                query={"v": list(extremities), "limit": str(BACKFILL_LIMIT)},
                timeout_s=REQUEST_TIMEOUT_S,
            )
        except FederationError as e:
            log.info("backfill of %s from %s failed: %s", room_id, server, e)
            return None
        pdus = body.get("pdus") if isinstance(body, dict) else None
        if not isinstance(pdus, list):
            log.info("backfill of %s from %s: no pdus in the answer", room_id, server)
            return None
        return pdus[:BACKFILL_LIMIT]

    async def _store(
        self, origin: str, room_version: RoomVersion, room_id: str, pdus: list[Any]
    ) -> int:
        """Check and store an answer's events oldest first; how many were stored."""
        checked: dict[str, Event] = {}
        for pdu in pdus:
            if not isinstance(pdu, dict):
                continue
            try:
                event = await checked_event(self._keys(), pdu, room_version)
            except (InvalidEventError, SignatureError) as e:
                log.info("dropping a backfilled PDU from %s: %s", origin, e)
                continue
            if event.room_id == room_id:
                checked[event.event_id] = event
        known = await self._events.get_events(checked)
        fresh = sorted(
            (e for i, e in checked.items() if i not in known or known[i].state_group is None),
            key=lambda e: (e.depth, e.origin_server_ts, e.event_id),
        )
        gaps = GapFiller(self._events, self._pipeline, RemoteEvents(self._client(), self._keys()))
        state_fetches = MAX_STATE_FETCHES
        stored = 0
        for event in fresh:
            await gaps.auth_events(origin, event)
            prevs = await self._events.get_events(event.prev_event_ids)
            missing = [
                i for i in event.prev_event_ids if i not in prevs or prevs[i].state_group is None
            ]
            if len(missing) > state_fetches:
                log.info("backfilled %s: too many gaps in one round", event.event_id)
                continue
            state_fetches -= len(missing)
            prev_states: dict[str, StateMap] = {}
            for prev_id in missing:
                state = await gaps.state_after(origin, room_version, room_id, prev_id)
                if state is None:
                    break
                prev_states[prev_id] = state
            if len(prev_states) < len(missing):
                log.info("backfilled %s: no state at its prev events", event.event_id)
                continue
            try:
                reception = await self._pipeline.receive_backfilled(event, prev_states=prev_states)
            except MatrixError as e:
                log.info("backfilled %s not stored: %s", event.event_id, e.message)
                continue
            if reception.rejected_reason is not None:
                log.info("backfilled %s rejected: %s", event.event_id, reception.rejected_reason)
            stored += 1
        return stored
