"""Jump to date over federation: `GET /_matrix/federation/v1/timestamp_to_event/{roomId}`.

`TimestampServing` answers other servers from our copy of the room (never
asking further, as Synapse), to servers that may read the room.
`FederationTimestamps` is the homeserver's `RemoteTimestamps`: it asks the
other servers in the room in turn and fetches the event they name, stored as
backfilled history (federation/backfill.py), so that the client can read it
through /context. The answer's timestamp is the event's own, not the claim.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from federation.backfill import FederationBackfill
from federation.serving import FederationReads
from federation.transport import FederationClient, FederationError
from homeserver.errors import not_found
from storage.events import EventStore
from storage.timestamps import TimestampStore

log = logging.getLogger(__name__)

V1 = "/_matrix/federation/v1"
# Servers asked per lookup, and how long each may take.
MAX_SERVERS = 3
REQUEST_TIMEOUT_S = 10.0


class TimestampServing:
    def __init__(self, reads: FederationReads, store: TimestampStore) -> None:
        self._reads = reads
        self._store = store

    async def serve(self, origin: str, room_id: str, ts: int, forwards: bool) -> dict[str, Any]:
        await self._reads.check_room_access(origin, room_id)
        found = await self._store.closest(room_id, ts, forwards)
        if found is None:
            raise not_found(f"No event found {'after' if forwards else 'before'} {ts}")
        return {"event_id": found.event_id, "origin_server_ts": found.origin_server_ts}


class FederationTimestamps:
    def __init__(
        self,
        client: Callable[[], FederationClient],
        backfill: FederationBackfill,
        events: EventStore,
    ) -> None:
        # Made with the federation listener, after the services that use this.
        self._client = client
        self._backfill = backfill
        self._events = events

    async def closest(self, room_id: str, ts: int, forwards: bool) -> tuple[str, int] | None:
        servers = await self._backfill.servers(room_id)
        for server in servers[:MAX_SERVERS]:
            event_id = await self._ask(server, room_id, ts, forwards)
            if event_id is None:
                continue
            # The server that named it first: it surely has it.
            order = [server, *(s for s in servers if s != server)]
            if await self._backfill.fetch_event(room_id, event_id, order):
                stored = (await self._events.get_events([event_id]))[event_id]
                return event_id, stored.event.origin_server_ts
        return None

    async def _ask(self, server: str, room_id: str, ts: int, forwards: bool) -> str | None:
        try:
            answer = await self._client().get_json(
                server,
                f"{V1}/timestamp_to_event/{quote(room_id, safe='')}",
                query={"ts": str(ts), "dir": "f" if forwards else "b"},
                timeout_s=REQUEST_TIMEOUT_S,
            )
        except FederationError as e:
            log.info("timestamp_to_event of %s from %s failed: %s", room_id, server, e)
            return None
        event_id = answer.get("event_id") if isinstance(answer, dict) else None
        if not isinstance(event_id, str) or not event_id.startswith("$"):
            return None
        return event_id
