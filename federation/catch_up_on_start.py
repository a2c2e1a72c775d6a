"""After a restart, ask the other servers of each shared room for what was sent
while we were away.

A peer that could not reach us retries on its own schedule (Synapse sleeps up
to a minute and more between attempts of one transaction, and backs off for
ten minutes after), so events sent while we were down could reach us long
after we are back. Instead, at start-up, each room's latest event is asked of
one of its other servers (`/timestamp_to_event`, backwards from now) and, if
we do not have it, fetched and handled as if it had arrived in a transaction:
the PDU path then fetches the events between it and ours
(`/get_missing_events`) as usual. Runs in the background with a bounded
number of requests in flight; a server that does not answer is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import quote

from federation.inbound.pdus import PduProcessor
from federation.transport import FederationClient, FederationError
from storage.events import EventStore
from storage.federation_reads import FederationReadStore

log = logging.getLogger(__name__)

# Requests in flight at once, so that a server in many rooms starts gently.
CONCURRENCY = 4
# Servers asked per room before giving up on it.
SERVERS_PER_ROOM = 3
REQUEST_TIMEOUT_S = 20.0


class CatchUpOnStart:
    def __init__(
        self,
        *,
        server_name: str,
        client: FederationClient,
        read_store: FederationReadStore,
        events: EventStore,
        pdus: PduProcessor,
    ) -> None:
        self._server_name = server_name
        self._client = client
        self._read_store = read_store
        self._events = events
        self._pdus = pdus

    async def run(self) -> int:
        """Catch up every shared room; how many rooms had news."""
        rooms = await self._read_store.rooms_shared_with_others(self._server_name)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(room_id: str, servers: list[str]) -> bool:
            async with limit:
                return await self._room(room_id, servers)

        results = await asyncio.gather(*(one(r, s) for r, s in rooms.items()))
        if rooms:
            log.info("caught up %d of %d shared rooms after start-up", sum(results), len(rooms))
        return sum(results)

    async def _room(self, room_id: str, servers: list[str]) -> bool:
        for server in servers[:SERVERS_PER_ROOM]:
            try:
                return await self._ask(server, room_id)
            except FederationError as e:
                log.info("catch-up of %s from %s failed: %s", room_id, server, e)
            except Exception:
                log.exception("catch-up of %s from %s failed", room_id, server)
        return False

    async def _ask(self, server: str, room_id: str) -> bool:
        latest = await self._client.get_json(
            server,
            f"/_matrix/federation/v1/timestamp_to_event/{quote(room_id, safe='')}",
            query={"ts": str(int(time.time() * 1000)), "dir": "b"},
            timeout_s=REQUEST_TIMEOUT_S,
        )
        event_id = latest.get("event_id") if isinstance(latest, dict) else None
        if not isinstance(event_id, str):
            return False
        known = (await self._events.get_events([event_id])).get(event_id)
        if known is not None and known.state_group is not None:
            return False
        answer = await self._client.get_json(
            server,
            f"/_matrix/federation/v1/event/{quote(event_id, safe='')}",
            timeout_s=REQUEST_TIMEOUT_S,
        )
        pdus = answer.get("pdus") if isinstance(answer, dict) else None
        if not isinstance(pdus, list) or len(pdus) != 1:
            return False
        result = await self._pdus.process(server, pdus[0])
        if result.error is not None:
            log.info("catch-up event %s from %s: %s", event_id, server, result.error)
            return False
        return True
