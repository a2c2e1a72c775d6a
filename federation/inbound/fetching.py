"""Asking the sending server for events we lack: by id, auth chains, the
events between our DAG and a new event, and the state at an event.

Every event that comes back passes the same first checks as a PDU in a
transaction (format, signatures, content hash); the ones that fail are
dropped. Fetches by id run a few at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import attrs

from federation.inbound.checks import checked_event
from federation.keys import KeyRing
from federation.transport import FederationClient, FederationError
from homeserver.events.errors import InvalidEventError, SignatureError
from homeserver.events.event import Event
from homeserver.events.room_versions import RoomVersion

log = logging.getLogger(__name__)

V1 = "/_matrix/federation/v1"
# Concurrent /event requests to one server while filling a gap.
FETCH_CONCURRENCY = 10


def _q(segment: str) -> str:
    return quote(segment, safe="")


@attrs.frozen
class StateIds:
    """/state_ids at an event: the state before it and its auth chain."""

    state: list[str]
    auth_chain: list[str]


class RemoteEvents:
    def __init__(self, client: FederationClient, keys: KeyRing) -> None:
        self._client = client
        self._keys = keys

    async def _checked(self, pdus: Any, room_version: RoomVersion, room_id: str) -> list[Event]:
        """The PDUs of an answer that pass the first checks and are of the room."""
        if not isinstance(pdus, list):
            return []
        events = []
        for pdu in pdus:
            if not isinstance(pdu, dict):
                continue
            try:
                event = await checked_event(self._keys, pdu, room_version)
            except (InvalidEventError, SignatureError) as e:
                log.info("dropping a fetched PDU: %s", e)
                continue
            if event.room_id == room_id:
                events.append(event)
        return events

    async def event(
        self, origin: str, room_version: RoomVersion, room_id: str, event_id: str
    ) -> Event | None:
        """GET /event/{eventId}: the event, checked, or None."""
        try:
            body = await self._client.get_json(origin, f"{V1}/event/{_q(event_id)}")
        except FederationError as e:
            log.info("fetching %s from %s failed: %s", event_id, origin, e)
            return None
        pdus = body.get("pdus") if isinstance(body, dict) else None
        found = [
            e for e in await self._checked(pdus, room_version, room_id) if e.event_id == event_id
        ]
        return found[0] if found else None

    async def events(
        self, origin: str, room_version: RoomVersion, room_id: str, event_ids: Iterable[str]
    ) -> list[Event]:
        """Several events by id, FETCH_CONCURRENCY at a time; the ones found."""
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(event_id: str) -> Event | None:
            async with limit:
                return await self.event(origin, room_version, room_id, event_id)

        found = await asyncio.gather(*(one(i) for i in dict.fromkeys(event_ids)))
        return [e for e in found if e is not None]

    async def auth_chain(
        self, origin: str, room_version: RoomVersion, room_id: str, event_id: str
    ) -> list[Event] | None:
        """GET /event_auth: the auth chain of an event, or None if it failed."""
        try:
            body = await self._client.get_json(
                origin, f"{V1}/event_auth/{_q(room_id)}/{_q(event_id)}"
            )
        except FederationError as e:
            log.info("event_auth of %s from %s failed: %s", event_id, origin, e)
            return None
        chain = body.get("auth_chain") if isinstance(body, dict) else None
        return await self._checked(chain, room_version, room_id)

    async def missing_events(
        self,
        origin: str,
        room_version: RoomVersion,
        room_id: str,
        *,
        earliest: list[str],
        latest: list[str],
        limit: int,
        min_depth: int,
    ) -> list[Event]:
        """POST /get_missing_events: the events between `earliest` (which we
        have) and `latest`, oldest first; none if the request failed."""
        try:
            body = await self._client.post_json(
                origin,
                f"{V1}/get_missing_events/{_q(room_id)}",
                {
                    "earliest_events": earliest,
                    "latest_events": latest,
                    "limit": limit,
                    "min_depth": min_depth,
                },
            )
        except FederationError as e:
            log.info("get_missing_events in %s from %s failed: %s", room_id, origin, e)
            return []
        events = await self._checked(
            body.get("events") if isinstance(body, dict) else None, room_version, room_id
        )
        return sorted(events, key=lambda e: (e.depth, e.origin_server_ts, e.event_id))

    async def state_ids(self, origin: str, room_id: str, event_id: str) -> StateIds | None:
        """GET /state_ids at an event, or None if it failed or is malformed."""
        try:
            body = await self._client.get_json(
                origin, f"{V1}/state_ids/{_q(room_id)}", query={"event_id": event_id}
            )
        except FederationError as e:
            log.info("state_ids at %s from %s failed: %s", event_id, origin, e)
            return None
        if not isinstance(body, dict):
            return None
        state, chain = body.get("pdu_ids"), body.get("auth_chain_ids")
        if not (isinstance(state, list) and isinstance(chain, list)):
            return None
        if not all(isinstance(i, str) for i in [*state, *chain]):
            return None
        return StateIds(state, chain)
