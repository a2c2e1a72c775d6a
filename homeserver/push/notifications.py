"""Which local users a new event notifies, written as notification rows.

Runs after the event commits and before /sync waiters wake (the pipeline's
commit hook), so that the unread counts a woken /sync reads already include
the event. It is on the send path, so it stays cheap: the room's local
members, display names and power levels are cached by state group (one
query per state change, none per message), the users' compiled rulesets
come from the cache, evaluation shares everything but the per-user checks
between users with the same rules (evaluator.evaluate_many), and the rows of
events evaluated at about the same time go in one insert.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

from homeserver.events.auth import get_power_level, parse_level
from homeserver.events.event import Event, StateKey
from homeserver.push.evaluator import Recipient, RoomFacts, RuleOutcome, evaluate_many
from homeserver.push.rules import PushRulesService
from homeserver.rooms.thread_subscriptions import ThreadSubscriptions
from storage.events import EventStore, StoredEvent
from storage.push import MAIN_THREAD, NewNotification, PushStore

logger = logging.getLogger(__name__)

# How many relations to follow looking for a thread (the spec suggests 3).
_THREAD_HOPS: Final = 3
# State groups whose room facts are kept.
_ROOMS_CACHED: Final = 1000
# Local members held over all the cached groups (a group of a room of
# 10,000 local members holds 10,000).
_MEMBERS_CACHED: Final = 500_000


def _thread_relation(event: Event) -> tuple[str | None, str | None]:
    relates = event.content.get("m.relates_to")
    if not isinstance(relates, Mapping):
        return None, None
    rel_type, parent = relates.get("rel_type"), relates.get("event_id")
    if isinstance(rel_type, str) and isinstance(parent, str):
        return rel_type, parent
    return None, None


def _notification_levels(power_levels: Event | None) -> dict[str, int]:
    """The `notifications` levels of a power levels event, as integers."""
    if power_levels is None:
        return {}
    levels = power_levels.content.get("notifications")
    if not isinstance(levels, Mapping):
        return {}
    parsed = {k: parse_level(power_levels.room_version, v) for k, v in levels.items()}
    return {k: v for k, v in parsed.items() if v is not None}


def _local_invitee(event: Event, server_name: str) -> str | None:
    """The local user an invite event invites, who is no member yet but is
    notified of it."""
    if event.type != "m.room.member" or event.content.get("membership") != "invite":
        return None
    invitee = event.state_key
    if invitee is None or invitee.partition(":")[2] != server_name:
        return None
    return invitee


@attrs.frozen
class _RoomAt:
    """A room's members and power levels as of a state group."""

    joined_count: int
    # Local joined members: (user id, display name or None).
    members: tuple[tuple[str, str | None], ...]
    auth_state: Mapping[StateKey, Event]
    notification_levels: Mapping[str, int]
    # Known to be the state at the group, not a later one (the room's current
    # state read once another event had followed): only exact facts are
    # built on by `_derived`, or a membership counted twice would stay wrong.
    exact: bool


class _GroupWriter:
    """Writes the rows of events evaluated at about the same time in one
    statement: while an insert is in flight, the rows of the events that
    follow wait and go together in the next one (a group commit). Each
    caller still returns only once its own rows are committed."""

    def __init__(self, store: PushStore) -> None:
        self._store = store
        self._waiting: list[tuple[Sequence[NewNotification], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def write(self, rows: Sequence[NewNotification]) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((rows, done))
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._store.add_notifications([r for rows, _ in batch for r in rows])
                except Exception as e:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(e)
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._task = None


class PushNotifier:
    """Evaluates each new event against its room's local members' push rules."""

    def __init__(
        self,
        rules: PushRulesService,
        store: PushStore,
        events: EventStore,
        *,
        server_name: str,
        thread_subscriptions: ThreadSubscriptions,
    ) -> None:
        self._rules = rules
        self._thread_subscriptions = thread_subscriptions
        self._store = store
        self._events = events
        self._server_name = server_name
        self._listeners: list[Callable[[Event, Sequence[NewNotification]], None]] = []
        self._writer = _GroupWriter(store)
        # State group -> what evaluation needs of the room at it, least recent first.
        self._rooms_at: OrderedDict[int, _RoomAt] = OrderedDict()
        self._members_cached = 0

    def add_listener(self, listener: Callable[[Event, Sequence[NewNotification]], None]) -> None:
        """Call `listener(event, rows)` once an event's notification rows are
        written (the pushers' sender). It must return at once: the event's
        send request is waiting."""
        self._listeners.append(listener)

    async def on_event(self, event: Event, stream_ordering: int) -> None:
        """Write the notifications `event` (at `stream_ordering`) gives local users."""
        room = await self._room_at(event, stream_ordering)
        recipients = [m for m in room.members if m[0] != event.sender]
        invitee = _local_invitee(event, self._server_name)
        if invitee is not None and all(u != invitee for u, _ in recipients):
            name = event.content.get("displayname")
            recipients.append((invitee, name if isinstance(name, str) else None))
        if not recipients:
            return
        rulesets = await self._rules.compiled([u for u, _ in recipients])
        thread_id = await self._thread_of(event)
        facts = RoomFacts(
            member_count=room.joined_count,
            sender_power_level=get_power_level(event.room_version, event.sender, room.auth_state),
            notification_levels=room.notification_levels,
            # One query for all the recipients, and only for events in a thread.
            thread_subscribers=(
                await self._thread_subscriptions.subscribers(
                    event.room_id, thread_id, [u for u, _ in recipients]
                )
                if thread_id != MAIN_THREAD
                else None
            ),
        )
        flat: dict[str, Any] = {**event.pdu, "event_id": event.event_id, "room_id": event.room_id}
        outcomes = evaluate_many(
            flat, facts, [Recipient(u, name, rulesets[u]) for u, name in recipients]
        )
        notified = [(u, o) for u, o in outcomes.items() if o.notify]
        if not notified:
            return
        encoded: dict[RuleOutcome, str] = {}
        rows = []
        for user_id, outcome in notified:
            actions = encoded.get(outcome)
            if actions is None:
                actions = encoded[outcome] = json.dumps(outcome.actions, separators=(",", ":"))
            rows.append(
                NewNotification(
                    user_id,
                    event.room_id,
                    stream_ordering,
                    event.event_id,
                    thread_id,
                    outcome.highlight,
                    actions,
                )
            )
        await self._writer.write(rows)
        for listener in self._listeners:
            listener(event, rows)

    async def _room_at(self, event: Event, stream_ordering: int) -> _RoomAt:
        """The room's members and power levels for an event, cached by the
        event's state group: events between two state changes share one, so
        only a state change costs a query."""
        stored = (await self._events.get_events([event.event_id])).get(event.event_id)
        group = stored.state_group if stored is not None else None
        cached = self._rooms_at.get(group) if group is not None else None
        if cached is not None:
            self._rooms_at.move_to_end(group)
            return cached
        room = await self._derived(event, stored) if stored is not None else None
        if room is None:
            room = await self._read_room(event, stream_ordering)
        if group is not None:
            self._remember(group, room)
        return room

    async def _read_room(self, event: Event, stream_ordering: int) -> _RoomAt:
        """The room's facts read whole (one query over all its members), from
        its current state: that of `event` (at `stream_ordering`) unless
        another event followed it meanwhile."""
        facts = await self._store.room_push_facts(event.room_id, self._server_name)
        state = await self._events.get_events(
            i for i in (facts.power_levels_event_id, facts.create_event_id) if i is not None
        )
        auth_state: dict[StateKey, Event] = {}
        for key, event_id in (
            (("m.room.power_levels", ""), facts.power_levels_event_id),
            (("m.room.create", ""), facts.create_event_id),
        ):
            if event_id in state:
                auth_state[key] = state[event_id].event
        return _RoomAt(
            facts.joined_count,
            facts.local_members,
            auth_state,
            _notification_levels(auth_state.get(("m.room.power_levels", ""))),
            exact=facts.head_stream == stream_ordering,
        )

    def _remember(self, group: int, room: _RoomAt) -> None:
        """Cache the facts at `group`, keeping the most recently used groups
        and, since a big room's member list is large, a bounded number of
        members over all of them."""
        self._rooms_at[group] = room
        self._members_cached += len(room.members)
        while len(self._rooms_at) > 1 and (
            len(self._rooms_at) > _ROOMS_CACHED or self._members_cached > _MEMBERS_CACHED
        ):
            _, dropped = self._rooms_at.popitem(last=False)
            self._members_cached -= len(dropped.members)

    async def _derived(self, event: Event, stored: StoredEvent) -> _RoomAt | None:
        """The facts after `event` from those of the state it was built on,
        when that state's facts are cached: a join to a room of 10,000
        members then costs no read of its members (it would be O(members)
        per membership change). None when they cannot be derived (several
        prev events, as after a fork, where the state was resolved; a
        rejected event; facts not cached)."""
        if stored.rejected_reason is not None or len(event.prev_event_ids) != 1:
            return None
        prev_id = event.prev_event_ids[0]
        prev = (await self._events.get_events([prev_id])).get(prev_id)
        if prev is None or prev.state_group is None:
            return None
        before = self._rooms_at.get(prev.state_group)
        if before is None or not before.exact:
            return None
        key = event.state_tuple if event.state_key is not None else None
        if key is None:
            return before
        if key in (("m.room.power_levels", ""), ("m.room.create", "")):
            auth_state = {**before.auth_state, key: event}
            return attrs.evolve(
                before,
                auth_state=auth_state,
                notification_levels=_notification_levels(
                    auth_state.get(("m.room.power_levels", ""))
                ),
            )
        if event.type != "m.room.member":
            return before
        user_id = event.state_key
        replaced = stored.replaces_state
        old = (await self._events.get_events([replaced])).get(replaced) if replaced else None
        if replaced is not None and old is None:
            return None
        was_joined = old is not None and old.event.content.get("membership") == "join"
        joined = event.content.get("membership") == "join"
        members = before.members
        if user_id.partition(":")[2] == self._server_name:
            members = tuple(m for m in members if m[0] != user_id)
            if joined:
                name = event.content.get("displayname")
                members += ((user_id, name if isinstance(name, str) else None),)
        return attrs.evolve(
            before,
            joined_count=before.joined_count + joined - was_joined,
            members=members,
        )

    async def _thread_of(self, event: Event) -> str:
        """The thread root the event belongs to, following relations a few
        hops (an edit or reaction of a thread reply is in that thread)."""
        current = event
        for _ in range(_THREAD_HOPS):
            rel_type, parent = _thread_relation(current)
            if parent is None:
                return MAIN_THREAD
            if rel_type == "m.thread":
                return parent
            found = (await self._events.get_events([parent])).get(parent)
            if found is None:
                return MAIN_THREAD
            current = found.event
        return MAIN_THREAD

    async def on_commit(self, event: Event, stream_ordering: int) -> None:
        """The pipeline hook: a failure here must not fail the committed send."""
        try:
            await self.on_event(event, stream_ordering)
        except Exception:
            logger.exception("push evaluation of %s failed", event.event_id)
