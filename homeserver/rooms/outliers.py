"""Events stored without their place in a room's DAG: auth events and
state other servers give us, and member events of rooms this server is not
in (remote invites, knocks, rejections), which carry a stream position so
that the member's /sync reports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from homeserver.events.auth import check_auth, check_auth_events_selection
from homeserver.events.errors import AuthError
from homeserver.events.event import Event
from homeserver.rooms.commit import RoomCommitter
from homeserver.rooms.local_events import LocalEvents
from storage.events import EventStore, NewEvent, StoredEvent
from storage.remote_membership import save_stripped_state


def _auth_order(events: Sequence[Event]) -> list[Event]:
    """`events` with every event after those of its auth events in the list."""
    by_id = {e.event_id: e for e in events}
    done: set[str] = set()
    order: list[Event] = []

    def visit(event: Event) -> None:
        stack = [(event, iter(event.auth_event_ids))]
        done.add(event.event_id)
        while stack:
            current, pending = stack[-1]
            for auth_id in pending:
                child = by_id.get(auth_id)
                if child is not None and auth_id not in done:
                    done.add(auth_id)
                    stack.append((child, iter(child.auth_event_ids)))
                    break
            else:
                stack.pop()
                order.append(current)

    for event in events:
        if event.event_id not in done:
            visit(event)
    return order


def _outlier_refusal(event: Event, accepted: Mapping[str, Event]) -> str | None:
    """Why an outlier fails against its own auth events, or None if it passes."""
    room_version = event.room_version
    auth = [accepted.get(i) for i in event.auth_event_ids]
    if any(a is None for a in auth):
        return "its auth events are unknown or refused"
    create = (
        accepted.get("$" + event.room_id[1:]) if room_version.room_id_from_create_event else None
    )
    try:
        own = check_auth_events_selection(
            room_version, event, [a for a in auth if a is not None], create
        )
        check_auth(room_version, event, own)
    except AuthError as e:
        return e.message
    return None


class Outliers:
    def __init__(self, committer: RoomCommitter, events: EventStore, local: LocalEvents) -> None:
        self._committer = committer
        self._events = events
        self._local = local

    async def store_out_of_band_member(
        self,
        event: Event,
        creator: str,
        stripped_state: list[dict[str, Any]] | None = None,
    ) -> StoredEvent:
        """Persist a member event of a room this server is not in: an invite
        from another server, our knock on a remote room, our rejection of a
        remote invite. It is an outlier (no place in the DAG, no state) with a
        stream position, so that the member's /sync reports it, with the
        stripped state the other server gave."""
        room_id = event.room_id
        new: NewEvent | None = None
        committed = False
        try:
            async with self._committer.lock(room_id), self._events.room_writer(room_id) as writer:
                await writer.ensure_room(event.room_version, creator)
                existing = await writer.get_events([event.event_id])
                if existing:
                    return existing[event.event_id]
                new = NewEvent(event, await self._committer.allocate(writer.conn), None, None, None)
                await writer.persist_outliers([event], [new.stream_ordering])
                if stripped_state is not None:
                    await save_stripped_state(writer.conn, event.event_id, stripped_state)
            committed = True
        finally:
            if new is not None:
                self._committer.publish(new, committed)
        return (await self._events.get_events([event.event_id]))[event.event_id]

    async def leave_out_of_band(self, member: Event, content: Mapping[str, Any]) -> StoredEvent:
        """Reject an invite (or withdraw a knock) of a room none of whose
        servers can be reached: a leave built and signed here on top of the
        invite or knock alone (the only event of the room we know), stored
        out of band, so that the user's sync moves the room to `leave`. The
        room's servers never hear of it."""
        assert member.state_key is not None
        leave = self._local.sign_event(
            member.room_version,
            room_id=member.room_id,
            type="m.room.member",
            sender=member.state_key,
            content={**content, "membership": "leave"},
            state_key=member.state_key,
            prev_events=[member],
            state={("m.room.member", member.state_key): member},
        )
        return await self.store_out_of_band_member(leave, member.sender)

    async def store_outliers(self, events: Sequence[Event]) -> dict[str, str]:
        """Store events of one room known without their place in its DAG (auth
        events and state another server gave us), each checked against its own
        auth events first; events already stored are left alone.

        Returns {event id: why} for the events refused (an auth event missing
        or refused, or the auth rules): those are not stored, so that nothing
        built on them is accepted either.
        """
        if not events:
            return {}
        room_id = events[0].room_id
        # Where the room id names the create event, no event lists it among
        # its auth events, yet every check needs it.
        create = ["$" + room_id[1:]] if events[0].room_version.room_id_from_create_event else []
        refused: dict[str, str] = {}
        async with self._committer.lock(room_id), self._events.room_writer(room_id) as writer:
            stored = await writer.get_events(
                {
                    *(e.event_id for e in events),
                    *(a for e in events for a in e.auth_event_ids),
                    *create,
                }
            )
            accepted = {i: s.event for i, s in stored.items() if s.rejected_reason is None}
            fresh: list[Event] = []
            for event in _auth_order(events):
                if event.event_id in stored or event.event_id in accepted:
                    continue
                reason = _outlier_refusal(event, accepted)
                if reason is not None:
                    refused[event.event_id] = reason
                    continue
                accepted[event.event_id] = event
                fresh.append(event)
            await writer.persist_outliers(fresh)
        return refused
