"""Events other servers send: received in transactions (/send), which
join the room's DAG and may move its current state, and history fetched by
/backfill, which never does.

Each is authorised against its own auth events, the state before it (the
resolution of its prev events' states, or those learnt across a gap) and,
for received events, the current state: failing the first two rejects it,
failing only the last soft-fails it (stored, never shown).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs

from homeserver.errors import MatrixError, not_found
from homeserver.events.auth import (
    auth_types_for_event,
    check_auth,
    check_auth_events_selection,
    get_named_level,
    get_power_level,
)
from homeserver.events.errors import AuthError
from homeserver.events.event import Event, StateKey
from homeserver.rooms.commit import RoomCommitter
from homeserver.rooms.event_state import (
    CREATE_KEY,
    current_state_change,
    resolved_group,
    state_after,
)
from storage.events import EventStore, NewEvent, RoomWriter, StoredEvent
from storage.received_events import historical_stream_ordering, persist_received
from storage.state import StateMap


@attrs.frozen
class Reception:
    """What became of an event received over federation."""

    event_id: str
    rejected_reason: str | None
    soft_failed: bool


def _auth_received(
    event: Event,
    loaded: Mapping[str, StoredEvent],
    before_ids: StateMap,
    current_ids: StateMap,
) -> tuple[str | None, bool]:
    """(rejection reason or None, soft-failed) of a received event: checked
    against its own auth events, the state before it, then the current state."""
    room_version = event.room_version
    auth = [loaded.get(i) for i in event.auth_event_ids]
    if any(a is None for a in auth):
        return "its auth events are unknown", False
    if any(a.rejected_reason is not None for a in auth if a is not None):
        return "one of its auth events was rejected", False
    create = loaded.get(before_ids.get(CREATE_KEY, ""))
    try:
        own = check_auth_events_selection(
            room_version,
            event,
            [a.event for a in auth if a is not None],
            create.event if create is not None else None,
        )
        check_auth(room_version, event, own)
        before = {k: loaded[i].event for k, i in before_ids.items() if i in loaded}
        check_auth(room_version, event, before)
    except AuthError as e:
        return e.message, False
    current = {k: loaded[i].event for k, i in current_ids.items() if i in loaded}
    try:
        check_auth(room_version, event, current)
    except AuthError:
        return None, True
    return None, False


def _prev_state_sets(
    event: Event, known: Mapping[str, StoredEvent], prev_states: Mapping[str, StateMap]
) -> tuple[list[int], list[StateMap]]:
    """The states after an event's prev events: the state groups of those we
    have with state, and the given maps for the others (400 if neither)."""
    groups: list[int] = []
    extra: list[StateMap] = []
    for prev_id in dict.fromkeys(event.prev_event_ids):
        prev = known.get(prev_id)
        if prev is not None and prev.state_group is not None:
            groups.append(prev.state_group)
        elif prev_id in prev_states:
            extra.append(dict(prev_states[prev_id]))
        else:
            raise MatrixError(400, "M_BAD_JSON", f"No state is known at {prev_id}")
    return groups, extra


class RemoteEvents:
    def __init__(self, committer: RoomCommitter, events: EventStore) -> None:
        self._committer = committer
        self._events = events

    async def receive_remote(
        self, event: Event, *, prev_states: Mapping[str, StateMap] | None = None
    ) -> Reception:
        """Persist an event another server sent in a transaction, after the
        caller checked its signatures and hashes and fetched its auth events.

        Unlike `accept_remote` it refuses nothing the spec says to keep: an
        event failing the auth rules against its auth events or against the
        state before it is stored rejected with the reason (never served,
        never in timelines); one passing those but failing against the current
        state is stored soft-failed (not shown to clients, not a forward
        extremity). The state before it is the resolution of its prev events'
        states; `prev_states` gives the state after prev events this server
        does not have (learnt from /state_ids across a gap).
        """
        room_version = event.room_version
        key = event.state_tuple if event.state_key is not None else None
        auth_keys = auth_types_for_event(room_version, event) | {CREATE_KEY}
        prev_states = prev_states or {}

        async def write(writer: RoomWriter) -> tuple[NewEvent, bool] | str:
            head, _, current_ids = await writer.prepare(auth_keys, None)
            if head is None:
                raise not_found("Unknown room")
            known = await writer.get_events([event.event_id, *event.prev_event_ids])
            existing = known.get(event.event_id)
            if existing is not None and existing.state_group is not None:
                return event.event_id
            groups, extra = _prev_state_sets(event, known, prev_states)
            before_group, before_ids = await resolved_group(writer, room_version, groups, extra)
            loaded = await writer.get_events(
                {
                    *event.auth_event_ids,
                    *(i for k, i in before_ids.items() if k in auth_keys),
                    *current_ids.values(),
                }
            )
            rejected, soft_failed = _auth_received(
                event, loaded, {k: i for k, i in before_ids.items() if k in auth_keys}, current_ids
            )
            group, replaces, chain = (
                await state_after(writer, event, before_group, before_ids)
                if rejected is None
                else (before_group, None, 0)
            )
            delta: dict[StateKey, tuple[str, str | None]] | None = None
            removed: tuple[StateKey, ...] = ()
            redacts_valid = False
            if rejected is None and not soft_failed:
                after_ids = dict(before_ids)
                if key is not None:
                    after_ids[key] = event.event_id
                delta, removed = await current_state_change(
                    writer, head, event, group, after_ids, plain=not extra
                )
                redacts_valid = await self._remote_redaction_valid(
                    writer, event, loaded, before_ids
                )
            new = NewEvent(
                event,
                await self._committer.allocate(writer.conn),
                group,
                replaces,
                delta,
                redacts_valid=redacts_valid,
                rejected_reason=rejected,
                state_chain_length=chain,
                removed_state=removed,
            )
            return new, soft_failed

        result: NewEvent | None = None
        committed = accepted = False
        after: list[Callable[[], None]] = []
        try:
            async with (
                self._committer.lock(event.room_id),
                self._events.room_writer(event.room_id) as writer,
            ):
                written = await write(writer)
                if isinstance(written, str):
                    stored = (await writer.get_events([written]))[written]
                    return Reception(written, stored.rejected_reason, soft_failed=False)
                result, soft_failed = written
                await persist_received(writer.conn, result, soft_failed=soft_failed)
                accepted = result.rejected_reason is None and not soft_failed
                if accepted:
                    after = await self._committer.in_transaction(writer, result)
            committed = True
            self._committer.maybe_compact(result)  # before any await, as in _commit
            writer.remember(result)
        finally:
            if result is not None:
                self._committer.publish(result, committed)
        if accepted:
            await self._committer.after_commit(result, after)
        return Reception(event.event_id, result.rejected_reason, soft_failed)

    async def receive_backfilled(
        self, event: Event, *, prev_states: Mapping[str, StateMap] | None = None
    ) -> Reception:
        """Persist a historical event another server gave us by /backfill,
        after the caller checked its signatures and hashes and fetched its
        auth events.

        It is authorised like a received event against its auth events and
        the state before it (the resolution of its prev events' states, or
        `prev_states` for prev events we lack), but the room's head is left
        alone: it becomes no forward extremity, changes no current state,
        can never be soft-failed (the current state says nothing about the
        past) and takes a negative stream position, so that /sync does not
        see it while /messages finds it by depth. No commit hooks (push) run
        for history. An outlier of the room (state from a join) is upgraded
        in place.
        """
        room_version = event.room_version
        key = event.state_tuple if event.state_key is not None else None
        auth_keys = auth_types_for_event(room_version, event) | {CREATE_KEY}
        result: NewEvent | None = None
        async with (
            self._committer.lock(event.room_id),
            self._events.room_writer(event.room_id) as writer,
        ):
            known = await writer.get_events([event.event_id, *event.prev_event_ids])
            existing = known.get(event.event_id)
            if existing is not None and existing.state_group is not None:
                return Reception(event.event_id, existing.rejected_reason, soft_failed=False)
            before_group: int | None = None
            before_ids: StateMap = {}
            if event.prev_event_ids:
                groups, extra = _prev_state_sets(event, known, prev_states or {})
                before_group, before_ids = await resolved_group(writer, room_version, groups, extra)
            before_auth = {k: i for k, i in before_ids.items() if k in auth_keys}
            loaded = await writer.get_events({*event.auth_event_ids, *before_auth.values()})
            # Judged at its place in the DAG only: the state before it stands
            # in for the current state, so it is never soft-failed.
            rejected, _ = _auth_received(event, loaded, before_auth, before_auth)
            group, replaces, chain = before_group, None, 0
            if key is not None and rejected is None:
                replaces = before_ids.get(key)
                group, chain = await writer.add_state_group(before_group, {key: event.event_id})
            result = NewEvent(
                event,
                await historical_stream_ordering(writer.conn),
                group,
                replaces,
                None,
                redacts_valid=rejected is None
                and await self._remote_redaction_valid(writer, event, loaded, before_ids),
                rejected_reason=rejected,
                state_chain_length=chain,
            )
            await persist_received(writer.conn, result, soft_failed=False, historical=True)
        writer.remember(result)
        self._committer.maybe_compact(result)
        return Reception(event.event_id, rejected, soft_failed=False)

    @staticmethod
    async def _remote_redaction_valid(
        writer: RoomWriter,
        event: Event,
        loaded: Mapping[str, StoredEvent],
        before_ids: StateMap,
    ) -> bool:
        """A received redaction applies to an event of its room sent by the
        same server, or by anyone if its sender has the redact power level."""
        if event.redacts is None:
            return False
        target = (await writer.get_events([event.redacts])).get(event.redacts)
        if target is None or target.event.room_id != event.room_id:
            return False
        if target.event.sender.partition(":")[2] == event.sender.partition(":")[2]:
            return True
        state = {k: loaded[i].event for k, i in before_ids.items() if i in loaded}
        room_version = event.room_version
        power = get_power_level(room_version, event.sender, state)
        return power >= get_named_level(room_version, "redact", state)
