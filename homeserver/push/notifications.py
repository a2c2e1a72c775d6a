"""Which local users a new event notifies, written as notification rows.

Most members of a room get the same outcome for an event: those with the
default rules, no pusher, and nothing in the event about them. That outcome
is evaluated once and written as one common row (`event_push_common`); the
readers count it for every local member joined when it was sent, but its
sender and anyone with a row of their own for it. The members something
singles out (rules or a pusher of their own, a mention in `m.mentions`, a
display name or localpart the body may contain, the target of a member
event, a subscription to the thread) are evaluated one by one and get a row
of their own (`event_push_notifications`) where their outcome is not the
common one ("not notified" included), or where they have a pusher to push.
So a plain message costs one row whatever the size of the room, and the
pushers' duty (push/stream.py) finds every push to send among the per-user
rows: a user with a pusher is always singled out.

Runs in the event's own transaction (the pipeline's transaction hook), so
the rows commit with the event, at no commit of their own, and the unread
counts a woken /sync reads already include it. It is on the send path, so it
stays cheap: the room's local members, display names and power levels are
cached by state group (one query per state change, none per message), the
users' compiled rulesets come from the cache, and evaluation shares
everything but the per-user checks between users with the same rules
(evaluator.evaluate_many). Every query goes through the room's writer: a
second pool connection taken under it could deadlock a busy pool.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from homeserver.events.auth import get_power_level, parse_level
from homeserver.events.event import Event, StateKey
from homeserver.push.evaluator import (
    Recipient,
    RoomFacts,
    RuleOutcome,
    evaluate_common,
    evaluate_many,
)
from homeserver.push.mention_index import MentionIndex
from homeserver.push.rules import PushRulesService
from homeserver.rooms.thread_subscriptions import ThreadSubscriptions
from storage.events import NewEvent, RoomWriter
from storage.push import MAIN_THREAD, CommonNotification, NewNotification, PushStore

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


def _mentioned(event: Event) -> list[str]:
    """The user ids of the event's `m.mentions`."""
    mentions = event.content.get("m.mentions")
    ids = mentions.get("user_ids") if isinstance(mentions, Mapping) else None
    return [u for u in ids if isinstance(u, str)] if isinstance(ids, list) else []


def _outcome_key(outcome: RuleOutcome | None) -> tuple[Any, ...]:
    """What a reader sees of an outcome: the same key, the same notification."""
    if outcome is None or not outcome.notify:
        return (False,)
    return (True, outcome.highlight, outcome.actions)


@attrs.define
class _MemberLookups:
    """Built from a `_RoomAt`'s members when an event first needs them."""

    names: dict[str, str | None] | None = None
    mentions: MentionIndex | None = None


@attrs.frozen
class _RoomAt:
    """A room's members and power levels as of a state group."""

    joined_count: int
    # Local joined members: (user id, display name or None).
    members: tuple[tuple[str, str | None], ...]
    auth_state: Mapping[StateKey, Event]
    notification_levels: Mapping[str, int]
    # Known to be the state at the group, not a later one (the room's current
    # state after a fork's resolution): only exact facts are built on by
    # `_derived`, or a membership counted twice would stay wrong.
    exact: bool
    member_ids: frozenset[str]
    # Local members with push rules of their own, and those with a pusher.
    ruled: frozenset[str]
    pushed: frozenset[str]
    lookups: _MemberLookups = attrs.field(factory=_MemberLookups)

    def names(self) -> dict[str, str | None]:
        if self.lookups.names is None:
            self.lookups.names = dict(self.members)
        return self.lookups.names

    def mention_index(self) -> MentionIndex:
        if self.lookups.mentions is None:
            self.lookups.mentions = MentionIndex(self.members)
        return self.lookups.mentions


class PushNotifier:
    """Evaluates each new event against its room's local members' push rules."""

    def __init__(
        self,
        rules: PushRulesService,
        store: PushStore,
        *,
        server_name: str,
        thread_subscriptions: ThreadSubscriptions,
    ) -> None:
        self._rules = rules
        self._thread_subscriptions = thread_subscriptions
        self._store = store
        self._server_name = server_name
        # State group -> what evaluation needs of the room at it, least recent first.
        self._rooms_at: OrderedDict[int, _RoomAt] = OrderedDict()
        self._members_cached = 0
        # Users who changed their push rules or set a pusher since start-up:
        # cached room facts may not know it, so they are evaluated one by one.
        self._changed_users: set[str] = set()

    def user_changed(self, user_id: str) -> None:
        """A user's push rules changed or a pusher of theirs is being set
        (PushRulesService's and PusherStore's listener)."""
        self._changed_users.add(user_id)

    async def in_transaction(self, writer: RoomWriter, new: NewEvent) -> Callable[[], None] | None:
        """The pipeline's transaction hook: write the notifications the new
        event gives local users (pushed from these rows, push/stream.py).

        A fault of evaluation is logged and costs the event its notifications,
        not its send; a failed insert fails the event with its transaction.
        """
        event = new.event
        await self._record_spans(writer, new)
        try:
            common, rows = await self._evaluate(writer, new)
        except Exception:
            logger.exception("push evaluation of %s failed", event.event_id)
            return None
        if common is not None:
            await self._store.add_common(common, writer.conn)
        if rows:
            await self._store.add_notifications(rows, writer.conn)
        return None

    async def _record_spans(self, writer: RoomWriter, new: NewEvent) -> None:
        """Open or close local users' membership spans (GET /notifications
        lists common rows inside them) as the room's current state changes."""
        delta = new.current_state_delta
        if not delta:
            return
        joined, left = [], []
        for (kind, user_id), (_, membership) in delta.items():
            if kind != "m.room.member" or user_id.partition(":")[2] != self._server_name:
                continue
            (joined if membership == "join" else left).append(user_id)
        if joined or left:
            await self._store.membership_changed(
                new.event.room_id, joined, left, new.stream_ordering, writer.conn
            )

    async def _evaluate(
        self, writer: RoomWriter, new: NewEvent
    ) -> tuple[CommonNotification | None, list[NewNotification]]:
        """The common row and the per-user rows of the new event."""
        event, stream_ordering = new.event, new.stream_ordering
        room = await self._room_at(writer, new)
        special = self._singled_out(room, event)
        special.discard(event.sender)
        invitee = _local_invitee(event, self._server_name)
        if invitee is not None and invitee != event.sender:
            special.add(invitee)
        members_notified = len(room.member_ids) - (event.sender in room.member_ids)
        common_count = members_notified - len(special & room.member_ids)
        if not special and common_count == 0:
            return None, []
        thread_id = await self._thread_of(writer, event)
        subscribers = None
        if thread_id != MAIN_THREAD:
            # One query, only for events in a thread; subscribers are singled out.
            everyone = await self._thread_subscriptions.subscribers(
                event.room_id, thread_id, None, writer
            )
            subscribers = frozenset(u for u in everyone if u in room.member_ids)
            special |= subscribers - {event.sender}
            common_count = members_notified - len(special & room.member_ids)
        facts = RoomFacts(
            member_count=room.joined_count,
            sender_power_level=get_power_level(event.room_version, event.sender, room.auth_state),
            notification_levels=room.notification_levels,
            thread_subscribers=subscribers,
        )
        flat: dict[str, Any] = {**event.pdu, "event_id": event.event_id, "room_id": event.room_id}
        common = None
        if common_count > 0:
            outcome = evaluate_common(flat, facts, self._rules.default_compiled())
            if outcome is not None and outcome.notify:
                common = outcome
        names = room.names()
        rulesets = await self._rules.compiled(list(special), writer)
        recipients = []
        for user_id in special:
            name = names.get(user_id)
            if user_id == invitee and user_id not in names:
                given = event.content.get("displayname")
                name = given if isinstance(given, str) else None
            recipients.append(Recipient(user_id, name, rulesets[user_id]))
        outcomes = evaluate_many(flat, facts, recipients)
        encoded: dict[RuleOutcome, str] = {}

        def encode(outcome: RuleOutcome) -> str:
            actions = encoded.get(outcome)
            if actions is None:
                actions = encoded[outcome] = json.dumps(outcome.actions, separators=(",", ":"))
            return actions

        common_key = _outcome_key(common)
        rows = []
        for user_id in special:
            outcome = outcomes.get(user_id)
            own = _outcome_key(outcome)
            # The common row counts for members only (an invitee is none).
            gets_common = common is not None and user_id in room.member_ids
            if outcome is not None and outcome.notify:
                pushed = user_id in room.pushed or user_id in self._changed_users
                if gets_common and own == common_key and not pushed:
                    continue
                highlight, actions, notify = outcome.highlight, encode(outcome), True
            elif gets_common:
                highlight, actions, notify = False, "[]", False
            else:
                continue
            rows.append(
                NewNotification(
                    user_id,
                    event.room_id,
                    stream_ordering,
                    event.event_id,
                    thread_id,
                    highlight,
                    actions,
                    notify,
                )
            )
        common_row = None
        if common is not None:
            common_row = CommonNotification(
                event.room_id,
                stream_ordering,
                event.event_id,
                thread_id,
                event.sender,
                common.highlight,
                encode(common),
            )
        return common_row, rows

    def _singled_out(self, room: _RoomAt, event: Event) -> set[str]:
        """The local members whose outcome for the event may not be the common
        one (but for thread subscribers, which need a query): rules or a
        pusher of their own, mentioned, maybe named in the body, or the
        target of a member event. Costs what the event holds, not the room's
        size."""
        special = set(room.ruled | room.pushed)
        special |= self._changed_users & room.member_ids
        special.update(u for u in _mentioned(event) if u in room.member_ids)
        if event.type == "m.room.member" and event.state_key in room.member_ids:
            special.add(event.state_key)
        body = event.content.get("body")
        # The legacy mention rules are skipped for events with m.mentions.
        if isinstance(body, str) and "m.mentions" not in event.content:
            special |= room.mention_index().candidates(body)
        return special

    async def _room_at(self, writer: RoomWriter, new: NewEvent) -> _RoomAt:
        """The room's members and power levels for an event, cached by the
        event's state group: events between two state changes share one, and
        a state change builds on the facts before it, so only a change that
        cannot (a fork, facts no longer cached) reads the whole room."""
        group = new.state_group
        cached = self._rooms_at.get(group) if group is not None else None
        if cached is not None:
            self._rooms_at.move_to_end(group)
            return cached
        room = await self._derived(writer, new)
        if room is None:
            room = await self._read_room(writer, new)
        if group is not None:
            self._remember(group, room)
        return room

    async def _read_room(self, writer: RoomWriter, new: NewEvent) -> _RoomAt:
        """The room's facts read whole (one query over all its members), from
        its current state in the event's transaction: the state after the
        event, unless the event is not the room's newest (received on a fork)."""
        facts = await self._store.room_push_facts(new.event.room_id, self._server_name, writer.conn)
        state = await writer.get_events(
            i for i in (facts.power_levels_event_id, facts.create_event_id) if i is not None
        )
        auth_state: dict[StateKey, Event] = {}
        for key, event_id in (
            (("m.room.power_levels", ""), facts.power_levels_event_id),
            (("m.room.create", ""), facts.create_event_id),
        ):
            if event_id in state:
                auth_state[key] = state[event_id].event
        member_ids = frozenset(u for u, _ in facts.local_members)
        ruled, pushed = await self._store.with_own_outcome(member_ids, writer.conn)
        return _RoomAt(
            facts.joined_count,
            facts.local_members,
            auth_state,
            _notification_levels(auth_state.get(("m.room.power_levels", ""))),
            exact=facts.head_stream == new.stream_ordering,
            member_ids=member_ids,
            ruled=frozenset(ruled),
            pushed=frozenset(pushed),
        )

    def forget_rooms(self) -> None:
        """Drop every room's cached facts: which members have rules of their
        own or a pusher may have changed unheard (a deployment's process that
        lost its invalidation channel)."""
        self._rooms_at.clear()
        self._members_cached = 0

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

    async def _derived(self, writer: RoomWriter, new: NewEvent) -> _RoomAt | None:
        """The facts after `event` from those of the state it was built on,
        when that state's facts are cached: a join to a room of 10,000
        members then costs no read of its members (it would be O(members)
        per membership change). None when they cannot be derived (several
        prev events, as after a fork, where the state was resolved; a
        rejected event; facts not cached)."""
        event = new.event
        if new.rejected_reason is not None or len(event.prev_event_ids) != 1:
            return None
        prev_id = event.prev_event_ids[0]
        prev = (await writer.get_events([prev_id])).get(prev_id)
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
        replaced = new.replaces_state
        old = (await writer.get_events([replaced])).get(replaced) if replaced else None
        if replaced is not None and old is None:
            return None
        was_joined = old is not None and old.event.content.get("membership") == "join"
        joined = event.content.get("membership") == "join"
        if user_id.partition(":")[2] != self._server_name:
            return attrs.evolve(before, joined_count=before.joined_count + joined - was_joined)
        members = tuple(m for m in before.members if m[0] != user_id)
        ruled, pushed = before.ruled - {user_id}, before.pushed - {user_id}
        if joined:
            name = event.content.get("displayname")
            members += ((user_id, name if isinstance(name, str) else None),)
            has_rules, has_pusher = await self._store.with_own_outcome([user_id], writer.conn)
            ruled |= has_rules
            pushed |= has_pusher
        return attrs.evolve(
            before,
            joined_count=before.joined_count + joined - was_joined,
            members=members,
            member_ids=frozenset(u for u, _ in members),
            ruled=ruled,
            pushed=pushed,
            lookups=_MemberLookups(),
        )

    async def _thread_of(self, writer: RoomWriter, event: Event) -> str:
        """The thread root the event belongs to, following relations a few
        hops (an edit or reaction of a thread reply is in that thread)."""
        current = event
        for _ in range(_THREAD_HOPS):
            rel_type, parent = _thread_relation(current)
            if parent is None:
                return MAIN_THREAD
            if rel_type == "m.thread":
                return parent
            found = (await writer.get_events([parent])).get(parent)
            if found is None:
                return MAIN_THREAD
            current = found.event
        return MAIN_THREAD
