"""Which local users a new event notifies, written as notification rows.

Runs after the event commits and before /sync waiters wake (the pipeline's
commit hook), so that the unread counts a woken /sync reads already include
the event. It is on the send path, so it stays cheap: one query for the
room's local members (with display names only when a rule could use them),
the users' compiled rulesets from the cache, evaluation in Python, and one
insert of the rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final

from homeserver.events.auth import get_power_level, parse_level
from homeserver.events.event import Event, StateKey
from homeserver.push.evaluator import CompiledRule, RoomFacts
from homeserver.push.rules import PushRulesService
from storage.events import EventStore
from storage.push import MAIN_THREAD, NewNotification, PushStore

logger = logging.getLogger(__name__)

# How many relations to follow looking for a thread (the spec suggests 3).
_THREAD_HOPS: Final = 3


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


class PushNotifier:
    """Evaluates each new event against its room's local members' push rules."""

    def __init__(
        self,
        rules: PushRulesService,
        store: PushStore,
        events: EventStore,
        *,
        server_name: str,
    ) -> None:
        self._rules = rules
        self._store = store
        self._events = events
        self._server_name = server_name

    async def on_event(self, event: Event, stream_ordering: int) -> None:
        """Write the notifications `event` (at `stream_ordering`) gives local users."""
        invitee = None
        if event.type == "m.room.member" and event.content.get("membership") == "invite":
            invitee = event.state_key
        body = event.content.get("body")
        # Display names only matter to contains_display_name, which only the
        # legacy mention rule uses, and which events with m.mentions skip:
        # loading names only for those keeps large rooms cheap. (A user's own
        # rule with that deprecated condition then misses on such events.)
        with_names = isinstance(body, str) and "m.mentions" not in event.content
        facts = await self._store.room_push_facts(
            event.room_id, self._server_name, invitee, with_names
        )
        members = [(u, name) for u, name in facts.local_members if u != event.sender]
        if not members:
            return
        rulesets = await self._rules.compiled([u for u, _ in members])
        state = await self._events.get_events(
            i for i in (facts.power_levels_event_id, facts.create_event_id) if i is not None
        )
        power_levels = state.get(facts.power_levels_event_id or "")
        create = state.get(facts.create_event_id or "")
        auth_state: dict[StateKey, Event] = {}
        if power_levels is not None:
            auth_state[("m.room.power_levels", "")] = power_levels.event
        if create is not None:
            auth_state[("m.room.create", "")] = create.event
        room = RoomFacts(
            member_count=facts.joined_count,
            sender_power_level=get_power_level(event.room_version, event.sender, auth_state),
            notification_levels=_notification_levels(auth_state.get(("m.room.power_levels", ""))),
        )
        flat: dict[str, Any] = {**event.pdu, "event_id": event.event_id, "room_id": event.room_id}
        thread_id: str | None = None
        shared: dict[Any, bool] = {}
        encoded: dict[CompiledRule, str] = {}
        rows = []
        for user_id, display_name in members:
            rule = rulesets[user_id].match(flat, room, display_name, shared)
            if rule is None or not rule.notify:
                continue
            if thread_id is None:
                thread_id = await self._thread_of(event)
            if rule not in encoded:
                encoded[rule] = json.dumps(rule.actions, separators=(",", ":"))
            rows.append(
                NewNotification(
                    user_id,
                    event.room_id,
                    stream_ordering,
                    event.event_id,
                    thread_id,
                    rule.highlight,
                    encoded[rule],
                )
            )
        if rows:
            await self._store.add_notifications(rows)

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
