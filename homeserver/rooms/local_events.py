"""Events this server builds: a room's creation, local sends, and the
events other servers must sign before they go in (invites of their users).

build -> authorise against the room's current state -> sign -> state after
it -> the commit step (commit.py). createRoom rehearses its whole sequence
in memory first, so that a refused part fails before the room exists.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from signedjson.types import SigningKey

from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.events.auth import (
    auth_types_for_event,
    check_auth,
    get_named_level,
    get_power_level,
)
from homeserver.events.builder import build_create_event, build_event
from homeserver.events.errors import AuthError, EventTooLargeError, InvalidEventError
from homeserver.events.event import Event, StateKey
from homeserver.events.room_versions import RoomVersion
from homeserver.rooms.commit import RoomCommitter
from homeserver.rooms.event_state import (
    CREATE_KEY,
    current_state_change,
    state_after,
    state_before,
)
from storage.events import EventStore, NewEvent, RoomExistsError, RoomHead, RoomWriter, StoredEvent
from storage.state import StateMap

# Tries at a free room id before createRoom gives up.
_CREATE_ATTEMPTS = 10
# The spec's limit on prev_events.
MAX_PREV_EVENTS = 20


# LocalEvents.commit_create, here or at the new room's owner.
CommitCreate = Callable[[Event, str], Awaitable[StoredEvent | None]]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _auth_keys(
    room_version: RoomVersion,
    type: str,
    state_key: str | None,
    sender: str,
    content: Mapping[str, Any],
) -> set[StateKey]:
    """The state a new local event is authorised against: its auth types,
    the create event, and its own key (the state it replaces)."""
    draft = {"type": type, "state_key": state_key, "sender": sender, "content": content}
    keys = auth_types_for_event(room_version, draft) | {CREATE_KEY}
    if state_key is not None:
        keys.add((type, state_key))
    return keys


def _authorise_local(
    room_version: RoomVersion, event: Event, state: Mapping[StateKey, Event]
) -> None:
    """403 if the auth rules refuse a local event against `state`."""
    try:
        check_auth(room_version, event, state)
    except AuthError as e:
        raise forbidden(e.message) from None


def _refused_format(error: InvalidEventError, what: str) -> MatrixError:
    """The client's error for a local event that breaks the event format:
    413 M_TOO_LARGE for the spec's size limits, 400 M_BAD_JSON otherwise."""
    if isinstance(error, EventTooLargeError):
        return MatrixError(413, "M_TOO_LARGE", f"The {what} is too large: {error}")
    return MatrixError(400, "M_BAD_JSON", f"Invalid {what}: {error}")


class LocalEvents:
    def __init__(
        self,
        committer: RoomCommitter,
        events: EventStore,
        *,
        server_name: str,
        signing_key: SigningKey,
    ) -> None:
        self._committer = committer
        self._events = events
        self._server_name = server_name
        self._signing_key = signing_key

    def new_room_id(self) -> str:
        """A fresh room id for a room version whose ids are not the create event's hash."""
        opaque = "".join(secrets.choice(string.ascii_letters) for _ in range(18))
        return f"!{opaque}:{self._server_name}"

    async def create_room(
        self,
        room_version: RoomVersion,
        creator: str,
        content: Mapping[str, Any],
        room_id: str | None,
        commit: CommitCreate,
    ) -> StoredEvent:
        """Persist a new room's create event; the room id is in the result.

        `room_id` (from `new_room_id`) is for versions whose ids are not the
        create event's hash, when the id must be known beforehand (an upgrade
        names it in the old room's tombstone).

        From room 12 the room id is the create event's hash, so two rooms
        created by one user in the same millisecond with the same content
        would get the same id: the later one moves its timestamp on. The
        event is built and signed here, and each attempt's is committed by
        `commit` (this object's `commit_create`, or in a deployment the new
        room's owner's, which is only known once the event is built).
        """
        ts = _now_ms()
        for attempt in range(_CREATE_ATTEMPTS):
            create = self._build_create(room_version, creator, content, ts + attempt, room_id)
            stored = await commit(create, creator)
            if stored is not None:
                return stored
            if room_id is not None:
                break
        raise MatrixError(500, "M_UNKNOWN", "Could not find a free room id")

    async def commit_create(self, create: Event, creator: str) -> StoredEvent | None:
        """Persist a built create event as a new room; None if its room id is
        taken already."""

        async def write(writer: RoomWriter) -> NewEvent:
            await writer.create_room(create.room_version, creator)
            group, _ = await writer.add_state_group(None, {CREATE_KEY: create.event_id})
            return NewEvent(
                create,
                await self._committer.allocate(writer.conn),
                group,
                None,
                {CREATE_KEY: (create.event_id, None)},
            )

        try:
            return await self._committer.commit(create.room_id, write)
        except RoomExistsError:
            return None

    def _build_create(
        self,
        room_version: RoomVersion,
        creator: str,
        content: Mapping[str, Any],
        ts: int,
        room_id: str | None = None,
    ) -> Event:
        if room_version.room_id_from_create_event:
            room_id = None
        elif room_id is None:
            room_id = self.new_room_id()
        try:
            create = build_create_event(
                room_version,
                sender=creator,
                content=content,
                origin_server_ts=ts,
                server_name=self._server_name,
                signing_key=self._signing_key,
                room_id=room_id,
            )
            check_auth(room_version, create, {})
        except AuthError as e:
            raise MatrixError(400, "M_BAD_JSON", f"Invalid create event: {e}") from None
        except InvalidEventError as e:
            raise _refused_format(e, "create event") from None
        return create

    def rehearse_new_room(
        self,
        room_version: RoomVersion,
        creator: str,
        create_content: Mapping[str, Any],
        state_events: Sequence[tuple[str, str, Mapping[str, Any]]],
    ) -> None:
        """Build and authorise a new room's events in memory; persist nothing.

        createRoom sends many events one by one. Checking the whole sequence
        first means a request that the auth rules would refuse part-way (say,
        power levels that leave the creator unable to set the join rules)
        fails with 400 before the room exists, instead of leaving half a room.
        """
        ts = _now_ms()
        create = self._build_create(room_version, creator, create_content, ts)
        state: dict[StateKey, Event] = {CREATE_KEY: create}
        last = create
        for type, state_key, content in state_events:
            try:
                last = build_event(
                    room_version,
                    room_id=create.room_id,
                    type=type,
                    sender=creator,
                    content=content,
                    state_key=state_key,
                    prev_events=[last],
                    state=lambda t, k: state.get((t, k)),
                    origin_server_ts=ts,
                    server_name=self._server_name,
                    signing_key=self._signing_key,
                )
            except InvalidEventError as e:
                raise _refused_format(e, f"{type} event") from None
            try:
                check_auth(room_version, last, state)
            except AuthError as e:
                raise MatrixError(
                    400, "M_INVALID_ROOM_STATE", f"The room's {type} event is refused: {e.message}"
                ) from None
            state[(type, state_key)] = last

    async def send(
        self,
        room_id: str,
        *,
        type: str,
        sender: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        redacts: str | None = None,
        txn: tuple[str, str] | None = None,
        origin_server_ts: int | None = None,
    ) -> StoredEvent:
        """Create, authorise and persist a local event; 403 if the auth rules refuse it.

        `origin_server_ts` replaces the time of sending for an application
        service's bridged messages (its `?ts=`)."""
        room_version = await self._events.room_version(room_id)
        if room_version is None:
            raise not_found("Unknown room")
        keys = _auth_keys(room_version, type, state_key, sender, content)

        async def write(writer: RoomWriter) -> NewEvent | str:
            head, earlier, current = await writer.prepare(
                keys, (sender, *txn) if txn is not None else None
            )
            if head is None:
                raise not_found("Unknown room")
            if earlier is not None:
                return earlier
            prev_group, state_ids, state, prev_events = await self._on_head(
                writer, head, keys, current
            )
            event = self.sign_event(
                room_version,
                room_id=room_id,
                type=type,
                sender=sender,
                content=content,
                state_key=state_key,
                redacts=redacts,
                prev_events=prev_events,
                state=state,
                origin_server_ts=origin_server_ts,
            )
            _authorise_local(room_version, event, state)
            redacts_valid = (
                await self._check_redaction(writer, event, state)
                if event.redacts is not None
                else False
            )
            group, replaces, chain = await state_after(writer, event, prev_group, state_ids)
            delta, removed = await current_state_change(writer, head, event, group)
            return NewEvent(
                event,
                await self._committer.allocate(writer.conn),
                group,
                replaces,
                delta,
                redacts_valid=redacts_valid,
                txn_device_id=txn[0] if txn else None,
                txn_id=txn[1] if txn else None,
                state_chain_length=chain,
                removed_state=removed,
            )

        return await self._committer.commit(room_id, write)

    async def build_local(
        self,
        room_id: str,
        *,
        type: str,
        sender: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
    ) -> Event:
        """Build, sign and authorise a local event on the room's current head
        without persisting it: an invite of another server's user, which that
        server must sign before it goes in through `accept_remote`."""
        room_version = await self._events.room_version(room_id)
        if room_version is None:
            raise not_found("Unknown room")
        keys = _auth_keys(room_version, type, state_key, sender, content)
        async with self._committer.lock(room_id), self._events.room_writer(room_id) as writer:
            head, _, current = await writer.prepare(keys, None)
            if head is None:
                raise not_found("Unknown room")
            _, _, state, prev_events = await self._on_head(writer, head, keys, current)
        event = self.sign_event(
            room_version,
            room_id=room_id,
            type=type,
            sender=sender,
            content=content,
            state_key=state_key,
            prev_events=prev_events,
            state=state,
        )
        _authorise_local(room_version, event, state)
        return event

    async def _on_head(
        self, writer: RoomWriter, head: RoomHead, keys: set[StateKey], current: StateMap
    ) -> tuple[int | None, StateMap, dict[StateKey, Event], list[Event]]:
        """Where a new local event goes: the state group it builds on, the
        wanted keys of that state (ids, and the events), and its prev events
        (the newest forward extremities, as many as the spec allows)."""
        extremities = sorted(head.extremities, key=lambda x: -x.depth)[:MAX_PREV_EVENTS]
        prev_group, state_ids = await state_before(writer, head, extremities, keys, current)
        loaded = await writer.get_events([*state_ids.values(), *(x.event_id for x in extremities)])
        state = {k: loaded[i].event for k, i in state_ids.items() if i in loaded}
        return prev_group, state_ids, state, [loaded[x.event_id].event for x in extremities]

    def sign_event(
        self,
        room_version: RoomVersion,
        *,
        room_id: str,
        type: str,
        sender: str,
        content: Mapping[str, Any],
        state_key: str | None,
        prev_events: Sequence[Event],
        state: Mapping[StateKey, Event],
        redacts: str | None = None,
        origin_server_ts: int | None = None,
    ) -> Event:
        """Build and sign an event of this server now, its auth events chosen
        from `state`; 400 if it breaks the event format."""
        try:
            return build_event(
                room_version,
                room_id=room_id,
                type=type,
                sender=sender,
                content=content,
                state_key=state_key,
                redacts=redacts,
                prev_events=prev_events,
                state=lambda t, k: state.get((t, k)),
                origin_server_ts=_now_ms() if origin_server_ts is None else origin_server_ts,
                server_name=self._server_name,
                signing_key=self._signing_key,
            )
        except InvalidEventError as e:
            raise _refused_format(e, f"{type} event") from None

    async def _check_redaction(
        self, writer: RoomWriter, event: Event, state: Mapping[StateKey, Event]
    ) -> bool:
        """May this local redaction take effect? 403 if its sender lacks the power.

        A redaction of an event we have not seen is accepted and applies
        nothing; one of another room's event is refused (400), as in Synapse,
        since it could never apply; one of another user's event needs the
        redact power level.
        """
        assert event.redacts is not None
        target = (await writer.get_events([event.redacts])).get(event.redacts)
        if target is None:
            return False
        if target.event.room_id != event.room_id:
            raise invalid_param("Cannot redact an event of another room")
        if target.event.sender == event.sender:
            return True
        room_version = event.room_version
        power = get_power_level(room_version, event.sender, state)
        if power < get_named_level(room_version, "redact", state):
            raise forbidden("You don't have permission to redact other users' events")
        return True
