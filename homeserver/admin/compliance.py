"""Compliance search: an administrator finds messages in every room of the server.

For audits and legal cases, so unlike /search it is not limited to the
rooms the searcher is in nor by history visibility. That reach is why it is
a POST of the admin API: every query, with its terms and filters, is written
to the audit log by the admin gate (homeserver/admin/gate.py) before the
answer goes out. It reads the same PostgreSQL full-text index as /search,
with the same query language (homeserver/rooms/search.py).
"""

from __future__ import annotations

from typing import Any

from homeserver.requester import Requester
from homeserver.rooms.format import EventFormatter
from homeserver.rooms.search import parse_search_term
from storage.compliance_search import ComplianceScope, ComplianceSearchStore
from storage.events import EventStore


class ComplianceSearch:
    def __init__(
        self, store: ComplianceSearchStore, events: EventStore, formatter: EventFormatter
    ) -> None:
        self._store = store
        self._events = events
        self._formatter = formatter

    async def search(
        self,
        admin: Requester,
        *,
        search_term: str,
        sender: str | None,
        room_id: str | None,
        from_ts: int | None,
        to_ts: int | None,
        before: int | None,
        limit: int,
    ) -> dict[str, Any]:
        """A page of matching events, newest first, as clients see them
        (redactions applied), with a `next_batch` while more may follow."""
        parsed = parse_search_term(search_term)
        if parsed.tsquery is None:
            return {"results": [], "highlights": []}
        scope = ComplianceScope(parsed.tsquery, sender, room_id, from_ts, to_ts)
        hits = await self._store.page(scope, before=before, limit=limit)
        stored = await self._events.get_events(event_id for event_id, _ in hits)
        found = [stored[event_id] for event_id, _ in hits if event_id in stored]
        events = await self._formatter.serialize(found, admin, aggregations=False)
        body: dict[str, Any] = {"results": events, "highlights": list(parsed.words)}
        if len(hits) == limit:
            body["next_batch"] = str(hits[-1][1])
        return body
