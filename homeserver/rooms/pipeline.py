"""The one way in for new local events.

(Long on purpose: every path that stores an event or moves a room's current
state goes through this one module, so that no path can differ in how it
authorises, resolves forks or persists.)

build -> auth against the room's current state -> sign -> compute the state
snapshot -> persist in one transaction -> advance the stream -> wake waiters.
Events of one room are serialised by an asyncio lock in this process and a
PostgreSQL advisory lock across processes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs
from signedjson.types import SigningKey

from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.events.auth import (
    auth_types_for_event,
    check_auth,
    check_auth_events_selection,
    get_named_level,
    get_power_level,
)
from homeserver.events.builder import build_create_event, build_event
from homeserver.events.errors import AuthError, EventTooLargeError, InvalidEventError
from homeserver.events.event import Event, StateKey
from homeserver.events.room_versions import RoomVersion
from homeserver.events.state_res import resolve_state
from homeserver.notifier import Notifier
from storage.events import (
    EventStore,
    Extremity,
    NewEvent,
    RoomExistsError,
    RoomHead,
    RoomWriter,
    StoredEvent,
    current_state_ids,
)
from storage.received_events import historical_stream_ordering, persist_received
from storage.remote_membership import save_stripped_state
from storage.state import MAX_CHAIN_LENGTH, StateMap, StateStore
from storage.streams import StreamIds

# A hook in an accepted event's transaction; what it returns runs once committed.
TransactionHook = Callable[[RoomWriter, NewEvent], Awaitable[Callable[[], None] | None]]

logger = logging.getLogger(__name__)

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
# Tries at a free room id before createRoom gives up.
_CREATE_ATTEMPTS = 10
# The spec's limit on prev_events.
MAX_PREV_EVENTS = 20


def _now_ms() -> int:
    return int(time.time() * 1000)


def _membership(event: Event) -> str | None:
    if event.type != "m.room.member":
        return None
    membership = event.content.get("membership")
    return membership if isinstance(membership, str) else None


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


async def _state_after(
    writer: RoomWriter, event: Event, before_group: int | None, before_ids: StateMap
) -> tuple[int | None, str | None, int]:
    """The state group after an event, the event it replaces in the state,
    and the group's delta chain length: a state event sets its key on top of
    the group before it; any other event stays on that group."""
    if event.state_key is None:
        return before_group, None, 0
    key = event.state_tuple
    group, chain = await writer.add_state_group(before_group, {key: event.event_id})
    return group, before_ids.get(key), chain


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


class EventPipeline:
    def __init__(
        self,
        events: EventStore,
        state: StateStore,
        stream: StreamIds,
        notifier: Notifier,
        *,
        server_name: str,
        signing_key: SigningKey,
    ) -> None:
        self._events = events
        self._state = state
        self._stream = stream
        self._notifier = notifier
        self._server_name = server_name
        self._signing_key = signing_key
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Committed events not yet visible (an earlier position is in flight):
        # stream position -> (room id, member event's target).
        self._unpublished: dict[int, tuple[str, str | None]] = {}
        # Room id -> its compaction in progress: one at a time per room.
        self._compactions: dict[str, asyncio.Task[None]] = {}
        # Awaited inside each accepted event's transaction, after its rows:
        # what readers must see together with the event (push notification
        # counts), committed with it in one commit.
        self._transaction_hooks: list[TransactionHook] = []
        # Awaited after each accepted event commits and its waiters were
        # woken: work derived from the event that no reader waits for. A hook
        # handles its own errors: the event is committed either way.
        self._commit_hooks: list[Callable[[Event, int], Awaitable[None]]] = []

    def add_transaction_hook(self, hook: TransactionHook) -> None:
        """Call `hook(writer, new)` in the transaction of every accepted event.

        It may only use `writer` for the database (a pool connection taken
        while the room's writer holds one could deadlock a busy pool); a
        failure fails the event. What it returns, if anything, is called once
        the event is committed (a listener's news that must not precede it).
        """
        self._transaction_hooks.append(hook)

    def add_commit_hook(self, hook: Callable[[Event, int], Awaitable[None]]) -> None:
        """Call `hook(event, stream_ordering)` after every committed event."""
        self._commit_hooks.append(hook)

    async def _in_transaction(self, writer: RoomWriter, new: NewEvent) -> list[Callable[[], None]]:
        """Run the transaction hooks; what each asks to run after the commit."""
        after = []
        for hook in self._transaction_hooks:
            then = await hook(writer, new)
            if then is not None:
                after.append(then)
        return after

    async def _after_commit(self, new: NewEvent, after: Sequence[Callable[[], None]]) -> None:
        for then in after:
            then()
        for hook in self._commit_hooks:
            await hook(new.event, new.stream_ordering)

    def _lock(self, room_id: str) -> asyncio.Lock:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = asyncio.Lock()
        return lock

    def new_room_id(self) -> str:
        """A fresh room id for a room version whose ids are not the create event's hash."""
        opaque = "".join(secrets.choice(string.ascii_letters) for _ in range(18))
        return f"!{opaque}:{self._server_name}"

    async def create_room(
        self,
        room_version: RoomVersion,
        creator: str,
        content: Mapping[str, Any],
        room_id: str | None = None,
    ) -> StoredEvent:
        """Persist a new room's create event; the room id is in the result.

        `room_id` (from `new_room_id`) is for versions whose ids are not the
        create event's hash, when the id must be known beforehand (an upgrade
        names it in the old room's tombstone).

        From room 12 the room id is the create event's hash, so two rooms
        created by one user in the same millisecond with the same content
        would get the same id: the later one moves its timestamp on.
        """
        ts = _now_ms()
        for attempt in range(_CREATE_ATTEMPTS):
            create = self._build_create(room_version, creator, content, ts + attempt, room_id)

            async def write(writer: RoomWriter, create: Event = create) -> NewEvent:
                await writer.create_room(room_version, creator)
                group, _ = await writer.add_state_group(None, {CREATE_KEY: create.event_id})
                return NewEvent(
                    create,
                    await self._stream.allocate(writer.conn),
                    group,
                    None,
                    {CREATE_KEY: (create.event_id, None)},
                )

            try:
                return await self._commit(create.room_id, write)
            except RoomExistsError:
                if room_id is not None:
                    break
                continue
        raise MatrixError(500, "M_UNKNOWN", "Could not find a free room id")

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
            event = self._sign_event(
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
            group, replaces, chain = await _state_after(writer, event, prev_group, state_ids)
            delta, removed = await self._current_state_change(writer, head, event, group)
            return NewEvent(
                event,
                await self._stream.allocate(writer.conn),
                group,
                replaces,
                delta,
                redacts_valid=redacts_valid,
                txn_device_id=txn[0] if txn else None,
                txn_id=txn[1] if txn else None,
                state_chain_length=chain,
                removed_state=removed,
            )

        return await self._commit(room_id, write)

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
        async with self._lock(room_id), self._events.room_writer(room_id) as writer:
            head, _, current = await writer.prepare(keys, None)
            if head is None:
                raise not_found("Unknown room")
            _, _, state, prev_events = await self._on_head(writer, head, keys, current)
        event = self._sign_event(
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
        prev_group, state_ids = await self._state_before(writer, head, extremities, keys, current)
        loaded = await writer.get_events([*state_ids.values(), *(x.event_id for x in extremities)])
        state = {k: loaded[i].event for k, i in state_ids.items() if i in loaded}
        return prev_group, state_ids, state, [loaded[x.event_id].event for x in extremities]

    def _sign_event(
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
            group, before_ids = await self._resolved_group(writer, room_version, groups, [])
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
            after_group, replaces, chain = await _state_after(writer, event, group, before_ids)
            after_ids = dict(before_ids)
            if event.state_key is not None:
                after_ids[event.state_tuple] = event.event_id
            delta, removed = await self._current_state_change(
                writer, head, event, after_group, after_ids
            )
            return NewEvent(
                event,
                await self._stream.allocate(writer.conn),
                after_group,
                replaces,
                delta,
                state_chain_length=chain,
                removed_state=removed,
            )

        return await self._commit(event.room_id, write)

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
        memberships = {e.state_tuple: _membership(e) for e in state}

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
                await self._stream.allocate(writer.conn),
                group,
                state_ids.get(key),
                delta,
                state_chain_length=chain,
            )

        return await self._commit(join.room_id, write)

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
            async with self._lock(room_id), self._events.room_writer(room_id) as writer:
                await writer.ensure_room(event.room_version, creator)
                existing = await writer.get_events([event.event_id])
                if existing:
                    return existing[event.event_id]
                new = NewEvent(event, await self._stream.allocate(writer.conn), None, None, None)
                await writer.persist_outliers([event], [new.stream_ordering])
                if stripped_state is not None:
                    await save_stripped_state(writer.conn, event.event_id, stripped_state)
            committed = True
        finally:
            if new is not None:
                self._publish(new, committed)
        return (await self._events.get_events([event.event_id]))[event.event_id]

    async def leave_out_of_band(self, member: Event, content: Mapping[str, Any]) -> StoredEvent:
        """Reject an invite (or withdraw a knock) of a room none of whose
        servers can be reached: a leave built and signed here on top of the
        invite or knock alone (the only event of the room we know), stored
        out of band, so that the user's sync moves the room to `leave`. The
        room's servers never hear of it."""
        assert member.state_key is not None
        leave = self._sign_event(
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
            before_group, before_ids = await self._resolved_group(
                writer, room_version, groups, extra
            )
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
                await _state_after(writer, event, before_group, before_ids)
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
                delta, removed = await self._current_state_change(
                    writer, head, event, group, after_ids, plain=not extra
                )
                redacts_valid = await self._remote_redaction_valid(
                    writer, event, loaded, before_ids
                )
            new = NewEvent(
                event,
                await self._stream.allocate(writer.conn),
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
            async with self._lock(event.room_id), self._events.room_writer(event.room_id) as writer:
                written = await write(writer)
                if isinstance(written, str):
                    stored = (await writer.get_events([written]))[written]
                    return Reception(written, stored.rejected_reason, soft_failed=False)
                result, soft_failed = written
                await persist_received(writer.conn, result, soft_failed=soft_failed)
                accepted = result.rejected_reason is None and not soft_failed
                if accepted:
                    after = await self._in_transaction(writer, result)
            committed = True
            self._maybe_compact(result)  # before any await, as in _commit
            writer.remember(result)
        finally:
            if result is not None:
                self._publish(result, committed)
        if accepted:
            await self._after_commit(result, after)
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
        async with self._lock(event.room_id), self._events.room_writer(event.room_id) as writer:
            known = await writer.get_events([event.event_id, *event.prev_event_ids])
            existing = known.get(event.event_id)
            if existing is not None and existing.state_group is not None:
                return Reception(event.event_id, existing.rejected_reason, soft_failed=False)
            before_group: int | None = None
            before_ids: StateMap = {}
            if event.prev_event_ids:
                groups, extra = _prev_state_sets(event, known, prev_states or {})
                before_group, before_ids = await self._resolved_group(
                    writer, room_version, groups, extra
                )
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
        self._maybe_compact(result)
        return Reception(event.event_id, rejected, soft_failed=False)

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
        async with self._lock(room_id), self._events.room_writer(room_id) as writer:
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

    async def _resolved_group(
        self,
        writer: RoomWriter,
        room_version: RoomVersion,
        groups: list[int],
        extra: list[StateMap],
    ) -> tuple[int, StateMap]:
        """A state group for the resolution of the given groups' states and
        other state maps, and its state (one group alone is itself)."""
        unique = list(dict.fromkeys(groups))
        if len(unique) == 1 and not extra:
            return unique[0], await writer.state_of_group(unique[0])
        state_sets = [await writer.state_of_group(g) for g in unique] + extra
        resolved = await self._resolve(writer, room_version, state_sets)
        base = state_sets[0] if unique else {}
        delta: dict[StateKey, str | None] = {
            k: v for k, v in resolved.items() if base.get(k) != v
        } | {k: None for k in base if k not in resolved}
        group, _ = await writer.add_state_group(unique[0] if unique else None, delta)
        return group, resolved

    @staticmethod
    async def _resolve(
        writer: RoomWriter,
        room_version: RoomVersion,
        state_sets: list[StateMap],
        pending: Event | None = None,
    ) -> StateMap:
        """State resolution over stored events (outliers included) and
        `pending`, the event being persisted, which a state set may hold but
        the database does not yet: an event the resolution cannot see is left
        out of it, and the other branch would win by default.

        The create event is loaded too: from room 12 no event lists it among
        its auth events, yet the auth rules of every event read it.
        """
        if len(state_sets) == 1:
            return dict(state_sets[0])
        conflicted = {
            event_id
            for key in {k for s in state_sets for k in s}
            if len({s.get(key) for s in state_sets}) > 1
            for s in state_sets
            if (event_id := s.get(key)) is not None
        }
        starts = set(conflicted)
        if pending is not None:
            starts.update(pending.auth_event_ids)
        creates = {s[CREATE_KEY] for s in state_sets if CREATE_KEY in s}
        needed = starts | creates | await writer.auth_chain_ids(starts)
        stored = await writer.get_events(needed)
        loaded = {i: s.event for i, s in stored.items()}
        rejected = {i for i, s in stored.items() if s.rejected_reason is not None}
        if pending is not None:
            loaded[pending.event_id] = pending
        return resolve_state(
            room_version, state_sets, loaded.get, is_rejected=rejected.__contains__
        )

    async def _current_state_change(
        self,
        writer: RoomWriter,
        head: RoomHead,
        event: Event,
        after_group: int | None,
        after_ids: StateMap | None = None,
        *,
        plain: bool = True,
    ) -> tuple[dict[StateKey, tuple[str, str | None]], tuple[StateKey, ...]]:
        """How the room's current state changes when `event` joins its forward
        extremities: the changed keys (with memberships) and the removed ones.
        Every path that makes an event a forward extremity (local sends,
        joins through /send_join, events received over /send) comes here.

        The usual case, an event on top of every extremity whose state before
        is theirs (`plain`: not learnt across a gap), changes at most its own
        key. Otherwise the current state is the resolution of the state after
        it (`after_ids`, or that of `after_group`) with the states after the
        extremities it leaves in place.
        """
        prevs = set(event.prev_event_ids)
        remaining = [x for x in head.extremities if x.event_id not in prevs]
        if plain and prevs == {x.event_id for x in head.extremities}:
            if event.state_key is None:
                return {}, ()
            return {event.state_tuple: (event.event_id, _membership(event))}, ()
        if after_ids is None:
            after_ids = await writer.state_of_group(after_group) if after_group is not None else {}
        state_sets = [after_ids] + [
            await writer.state_of_group(x.state_group)
            for x in remaining
            if x.state_group is not None
        ]
        resolved = await self._resolve(writer, event.room_version, state_sets, event)
        current = await current_state_ids(writer.conn, writer.room_id)
        changed = {k: v for k, v in resolved.items() if current.get(k) != v}
        members = await writer.get_events(
            i for k, i in changed.items() if k[0] == "m.room.member" and i != event.event_id
        )
        delta = {
            k: (
                i,
                _membership(event)
                if i == event.event_id
                else _membership(members[i].event)
                if i in members
                else None,
            )
            for k, i in changed.items()
        }
        return delta, tuple(k for k in current if k not in resolved)

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

    async def _commit(self, room_id: str, write: Any) -> StoredEvent:
        """Run `write` in the room's transaction, then publish the event.

        `write` returns the event to persist, or the id of an event that
        already answers the request (a retried transaction id).
        """
        new: NewEvent | None = None
        committed = False
        after: list[Callable[[], None]] = []
        try:
            async with self._lock(room_id), self._events.room_writer(room_id) as writer:
                result = await write(writer)
                if isinstance(result, str):
                    return (await writer.get_events([result]))[result]
                new = result
                await writer.persist(new)
                after = await self._in_transaction(writer, new)
            committed = True
            # Before any await: the room's next writer cannot have built on
            # this group yet, so the first group past the chain limit is the
            # one compacted, not a later one that would leave it long.
            self._maybe_compact(new)
            writer.remember(new)
        finally:
            if new is not None:
                self._publish(new, committed)
        # Waiters are woken first: nothing after the commit is theirs to wait for.
        await self._after_commit(new, after)
        stored = await self._events.get_events([new.event.event_id])
        return stored[new.event.event_id]

    def _publish(self, new: NewEvent, committed: bool) -> None:
        """Committed or abandoned, the position is no longer in flight; wake
        the readers of every event that just became visible in stream order."""
        if committed:
            event = new.event
            member = event.state_key if event.type == "m.room.member" else None
            self._unpublished[new.stream_ordering] = (event.room_id, member)
        if not self._stream.finish(new.stream_ordering):
            return
        visible = [p for p in self._unpublished if p <= self._stream.current]
        rooms, users = set(), set()
        for position in visible:
            room, member = self._unpublished.pop(position)
            rooms.add(room)
            if member:
                users.add(member)
        self._notifier.notify("events", self._stream.current, rooms=rooms, users=users)

    async def _state_before(
        self,
        writer: RoomWriter,
        head: RoomHead,
        prevs: Sequence[Extremity],
        keys: set[StateKey],
        current: StateMap,
    ) -> tuple[int | None, StateMap]:
        """The state group a new event on the forward extremities `prevs`
        builds on, and the wanted keys of its state.

        One forward extremity: the room's current state (`current`, the wanted
        keys of it) is its state. Several (forks from federation): resolve the
        states after `prevs` (not those of extremities the event leaves out,
        past the spec's limit on prev events), and store the result as a group.
        """
        if len(head.extremities) <= 1:
            group = head.extremities[0].state_group if head.extremities else None
            return group, current
        groups = [x.state_group for x in prevs if x.state_group is not None]
        group, resolved = await self._resolved_group(writer, head.room_version, groups, [])
        return group, {k: v for k, v in resolved.items() if k in keys}

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

    def _maybe_compact(self, new: NewEvent | None) -> None:
        """Rewrite a long delta chain as a snapshot, in the background."""
        if new is None or new.state_group is None or new.state_chain_length <= MAX_CHAIN_LENGTH:
            return
        room_id = new.event.room_id
        if room_id in self._compactions:
            return
        task = asyncio.create_task(self._compact(room_id, new.state_group))
        self._compactions[room_id] = task
        task.add_done_callback(lambda _: self._compactions.pop(room_id, None))

    async def _compact(self, room_id: str, group: int) -> None:
        try:
            async with self._lock(room_id):
                await self._state.compact(room_id, group)
        except Exception:
            logger.exception("compacting state group %d failed", group)

    async def drain(self) -> None:
        """Wait for background compactions (at shutdown, and in tests)."""
        while self._compactions:
            await asyncio.gather(*self._compactions.values())
