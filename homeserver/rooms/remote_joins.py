"""Events of other servers that go in whole, checked by the caller: a
remote user's join through /send_join, and a local user's join to a room
another server hosts, with the state and auth chain its answer gave.
"""

from __future__ import annotations

from collections.abc import Sequence

from homeserver.errors import MatrixError, forbidden, not_found
from homeserver.events.auth import auth_types_for_event, check_auth, check_auth_events_selection
from homeserver.events.errors import AuthError
from homeserver.events.event import Event
from homeserver.rooms.commit import RoomCommitter
from homeserver.rooms.event_state import (
    CREATE_KEY,
    current_state_change,
    membership,
    resolved_group,
    state_after,
)
from storage.events import EventStore, NewEvent, RoomWriter, StoredEvent


class RemoteJoins:
    def __init__(self, committer: RoomCommitter, events: EventStore) -> None:
        self._committer = committer
        self._events = events

    async def accept_remote(self, event: Event) -> StoredEvent:
        """Persist an event another server built and signed (a join through
        /send_join), after the caller checked its signatures and hashes.

        Authorised against its own auth events, the state before it (from its
        prev_events, resolved if they fork) and the room's current state; 403
        if any refuses it, 400 if it names events this server does not have.
        An event already stored is returned as it is.
        """
        room_version = event.room_version

        async def write(writer: RoomWriter) -> NewEvent | str:
            head, _, current_ids = await writer.prepare(
                auth_types_for_event(room_version, event) | {CREATE_KEY}, None
            )
            if head is None:
                raise not_found("Unknown room")
            if await writer.get_events([event.event_id]):
                return event.event_id
            prev = await writer.get_events(event.prev_event_ids)
            if len(prev) != len(set(event.prev_event_ids)):
                raise MatrixError(400, "M_BAD_JSON", "The event's prev_events are unknown here")
            groups = [p.state_group for p in prev.values() if p.state_group is not None]
            if len(groups) != len(prev):
                raise MatrixError(400, "M_BAD_JSON", "No state is known at the prev_events")
            group, before_ids = await resolved_group(writer, room_version, groups, [])
            create_id = before_ids.get(CREATE_KEY)
            loaded = await writer.get_events(
                {*event.auth_event_ids, *before_ids.values(), *current_ids.values()}
            )
            if any(
                i not in loaded or loaded[i].rejected_reason is not None
                for i in event.auth_event_ids
            ):
                raise forbidden("The event's auth events are unknown or rejected")
            create = loaded.get(create_id or "")
            try:
                own = check_auth_events_selection(
                    room_version,
                    event,
                    [loaded[i].event for i in event.auth_event_ids],
                    create.event if create is not None else None,
                )
                check_auth(room_version, event, own)
                for state_ids in (before_ids, current_ids):
                    state = {k: loaded[i].event for k, i in state_ids.items() if i in loaded}
                    check_auth(room_version, event, state)
            except AuthError as e:
                raise forbidden(e.message) from None
            after_group, replaces, chain = await state_after(writer, event, group, before_ids)
            after_ids = dict(before_ids)
            if event.state_key is not None:
                after_ids[event.state_tuple] = event.event_id
            delta, removed = await current_state_change(writer, head, event, after_group, after_ids)
            return NewEvent(
                event,
                await self._committer.allocate(writer.conn),
                after_group,
                replaces,
                delta,
                state_chain_length=chain,
                removed_state=removed,
            )

        return await self._committer.commit(event.room_id, write)

    async def join_remote_room(
        self, join: Event, state: Sequence[Event], auth_chain: Sequence[Event], creator: str
    ) -> StoredEvent:
        """Persist a local user's join to a room another server hosts, from the
        state before the join and its auth chain that the send_join answer gave.

        The caller verified all of it (signatures, hashes, auth). The state and
        auth chain are stored as outliers, the state before the join becomes a
        state group, and the join itself is persisted like any event on top of
        it: it becomes the room's only forward extremity, and the room's
        current state is materialised from scratch.
        """
        room_version = join.room_version
        key = (join.type, join.state_key or "")
        state_ids = {e.state_tuple: e.event_id for e in state}
        memberships = {e.state_tuple: membership(e) for e in state}

        async def write(writer: RoomWriter) -> NewEvent | str:
            await writer.ensure_room(room_version, creator)
            if await writer.get_events([join.event_id]):
                return join.event_id
            await writer.persist_outliers({e.event_id: e for e in [*auth_chain, *state]}.values())
            await writer.reset_room_head()
            before, _ = await writer.add_state_group(None, state_ids)
            group, chain = await writer.add_state_group(before, {key: join.event_id})
            delta = {k: (i, memberships[k]) for k, i in state_ids.items()}
            delta[key] = (join.event_id, "join")
            return NewEvent(
                join,
                await self._committer.allocate(writer.conn),
                group,
                state_ids.get(key),
                delta,
                state_chain_length=chain,
            )

        return await self._committer.commit(join.room_id, write)
