"""Relations between events (spec: "Event relationships" and the modules for
m.replace, m.thread, m.reference): pages of an event's children for
/relations, the room's threads for /threads, and the bundled aggregations in
unsigned["m.relations"] that EventFormatter adds to every served event.

Edits are never applied here: the latest valid edit is bundled in full and
clients apply its m.new_content (spec v1.7 and later).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from homeserver.errors import forbidden, not_found
from homeserver.requester import Requester
from homeserver.rooms.history import check_token, token_position, topological_token
from homeserver.rooms.visibility import WORLD_READABLE, HistoryVisibility
from storage.account_data import AccountDataStore
from storage.events import EventStore, StoredEvent
from storage.history import HistoryStore
from storage.relations import Parent, Position, RelationStore
from storage.rooms import RoomStore

if TYPE_CHECKING:
    from homeserver.rooms.format import EventFormatter

# Spec: homeservers SHOULD follow at least 3 levels of relations with recurse.
RECURSION_DEPTH = 3
MAX_RELATIONS_LIMIT = 1000
MAX_THREADS_LIMIT = 100
# Children of these are not aggregated: an edit or a reaction has no relations of its own.
_NOT_PARENTS = ("m.replace", "m.annotation")


@attrs.frozen
class RelationsPage:
    events: list[StoredEvent]
    next_batch: str | None
    prev_batch: str | None
    recursion_depth: int | None


@attrs.frozen
class ThreadsPage:
    roots: list[StoredEvent]
    next_batch: str | None


def _ignored_users(content_json: str | None) -> list[str]:
    """The user ids of an m.ignored_user_list content (none if it is malformed)."""
    try:
        ignored = json.loads(content_json).get("ignored_users") if content_json else None
    except (ValueError, AttributeError):
        return []
    return [u for u in ignored if isinstance(u, str)] if isinstance(ignored, dict) else []


def _rel_type(stored: StoredEvent) -> str | None:
    relates = stored.event.content.get("m.relates_to")
    rel_type = relates.get("rel_type") if isinstance(relates, dict) else None
    return rel_type if isinstance(rel_type, str) else None


def _parent(stored: StoredEvent) -> Parent:
    event = stored.event
    return Parent(event.event_id, event.room_id, event.sender, event.type)


class RelationsService:
    def __init__(
        self,
        store: RelationStore,
        events: EventStore,
        rooms: RoomStore,
        history: HistoryStore,
        visibility: HistoryVisibility,
        account_data: AccountDataStore,
    ) -> None:
        self._store = store
        self._events = events
        self._rooms = rooms
        self._history = history
        self._visibility = visibility
        self._account_data = account_data

    async def _require_access(self, user_id: str, room_id: str) -> None:
        """Who may read a room at all, as for /messages: members, former members
        who have not forgotten it, and anyone if it is world-readable. Which of
        its events they see is then HistoryVisibility's decision."""
        membership, _ = await self._rooms.membership(room_id, user_id)
        if membership == "join":
            return
        if membership == "leave" and not await self._history.has_forgotten(user_id, room_id):
            return
        if await self._visibility.current(room_id) == WORLD_READABLE:
            return
        if not await self._rooms.exists(room_id):
            raise not_found("Unknown room")
        raise forbidden("You are not allowed to read this room")

    async def _position(self, room_id: str, token: str | None) -> Position | None:
        if token is None:
            return None
        return await token_position(self._history, room_id, token)

    async def relations(
        self,
        requester: Requester,
        room_id: str,
        event_id: str,
        *,
        rel_type: str | None,
        event_type: str | None,
        from_token: str | None,
        to_token: str | None,
        limit: int,
        forwards: bool,
        recurse: bool | None,
    ) -> RelationsPage:
        """A page of the children of `event_id` that the user may see (so a page
        may hold fewer than `limit`); `recurse` None means not asked."""
        check_token(from_token)
        check_token(to_token)
        user_id = requester.user_id
        await self._require_access(user_id, room_id)
        parent = (await self._events.get_events([event_id])).get(event_id)
        if (
            parent is None
            or parent.event.room_id != room_id
            or not await self._visibility.visible(user_id, parent)
        ):
            raise not_found("Unknown parent event")
        start = await self._position(room_id, from_token)
        stop = await self._position(room_id, to_token)
        depth = RECURSION_DEPTH if recurse else 1
        page = await self._store.children(
            room_id,
            event_id,
            rel_type=rel_type,
            event_type=event_type,
            start=start,
            stop=stop,
            forwards=forwards,
            limit=min(limit, MAX_RELATIONS_LIMIT),
            max_level=depth,
        )
        found = await self._events.get_events(page.event_ids)
        visible = await self._visibility.filter(
            user_id, [found[i] for i in page.event_ids if i in found]
        )
        next_batch = None
        if page.last is not None:
            # Backwards, the next page starts just before the last event returned.
            depth_, stream = page.last
            next_batch = topological_token(page.last if forwards else (depth_, stream - 1))
        return RelationsPage(
            visible,
            next_batch,
            from_token,
            depth if recurse is not None else None,
        )

    async def threads(
        self,
        requester: Requester,
        room_id: str,
        *,
        participated_only: bool,
        from_token: str | None,
        limit: int,
    ) -> ThreadsPage:
        """The room's thread roots that the user may see, the most recently
        active first; a token is the gap just before the last root's latest reply."""
        check_token(from_token)
        await self._require_access(requester.user_id, room_id)
        before = await self._position(room_id, from_token)
        ids, last = await self._store.thread_roots(
            room_id,
            participant=requester.user_id if participated_only else None,
            before=before,
            limit=min(limit, MAX_THREADS_LIMIT),
        )
        found = await self._events.get_events(ids)
        return ThreadsPage(
            await self._visibility.filter(requester.user_id, [found[i] for i in ids if i in found]),
            topological_token((last[0], last[1] - 1)) if last is not None else None,
        )

    async def bundle(
        self,
        events: Sequence[StoredEvent],
        requester: Requester | None,
        formatter: EventFormatter,
    ) -> dict[str, dict[str, Any]]:
        """{event id: its unsigned["m.relations"]} for the events that have any.

        The caller passes only events that may carry aggregations (not redacted,
        not state). A handful of queries for the whole batch: which of the
        events have any children at all (most have none, and only those go
        on), the requester's ignored users, thread summaries (which leave
        those users out), then edits and references of the events and of
        their threads' latest replies, then one formatter pass for the
        bundled events themselves.
        """
        candidates = [s for s in events if _rel_type(s) not in _NOT_PARENTS]
        if not candidates:
            return {}
        related = await self._store.with_children([s.event.event_id for s in candidates])
        parents = [s for s in candidates if s.event.event_id in related]
        if not parents:
            return {}
        user_id = requester.user_id if requester is not None else None
        ignored = (
            _ignored_users(await self._account_data.get(user_id, "", "m.ignored_user_list"))
            if user_id is not None
            else []
        )
        threads = await self._store.thread_summaries(
            [_parent(s) for s in parents], user_id, ignored
        )
        latest = await self._events.get_events(t.latest_event_id for t in threads.values())
        # Latest replies get their own edits and references (never threads:
        # a thread cannot be rooted on an event that has a relation).
        simple = [*parents, *(s for s in latest.values() if _rel_type(s) not in _NOT_PARENTS)]
        edit_ids = await self._store.latest_edits([_parent(s) for s in simple])
        references = await self._store.references([_parent(s) for s in simple])
        edits = await self._events.get_events(edit_ids.values())
        # An erased sender's edits and replies come redacted, as their events do.
        bundled = await self._visibility.erasure_applied(
            user_id, [*latest.values(), *edits.values()]
        )
        served = {
            body["event_id"]: body
            for body in (
                await formatter.serialize(bundled, requester, aggregations=False) if bundled else []
            )
        }

        def simple_relations(event_id: str) -> dict[str, Any]:
            out: dict[str, Any] = {}
            edit = served.get(edit_ids.get(event_id, ""))
            if edit is not None:
                out["m.replace"] = edit
            if event_id in references:
                out["m.reference"] = {"chunk": [{"event_id": i} for i in references[event_id]]}
            return out

        for event_id in latest:
            relations = simple_relations(event_id)
            if relations and event_id in served:
                served[event_id]["unsigned"]["m.relations"] = relations
        result = {}
        for stored in parents:
            root = stored.event
            relations = simple_relations(root.event_id)
            thread = threads.get(root.event_id)
            if thread is not None and thread.latest_event_id in served:
                relations["m.thread"] = {
                    "latest_event": served[thread.latest_event_id],
                    "count": thread.count,
                    "current_user_participated": thread.user_replied or root.sender == user_id,
                }
            if relations:
                result[root.event_id] = relations
        return result
