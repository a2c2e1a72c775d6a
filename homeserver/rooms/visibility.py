"""History visibility: which events of a room a user may see.

The spec ("Room History Visibility") decides per event from two facts "at"
the event: the room's `m.room.history_visibility` and the user's membership.

1. `world_readable`: anyone may see it.
2. The user was joined: they may see it.
3. `shared`: they may see it if they joined the room at any point after it.
4. `invited`: they may see it if they were invited at the time.
5. Otherwise (`joined` included) they may not.

"At" the event means the state before it. An event's stored state group is
the state after it, which is the same thing except for the two kinds of state
event that change one of the facts, where we follow Synapse:

- a history_visibility change is judged by the more permissive of the old
  and the new setting, so that everyone who could see history before the
  change sees the change itself;
- a user's own membership events are always visible to that user (their
  invite, join, leave, kick and ban), so a client can show how and why its
  user's membership changed even where it could not see what came between.

Unknown or missing settings count as `shared`, the spec's default.

`HistoryVisibility.filter` applies this to a batch of events with a bounded
number of queries: one for the two state keys at every event's state group,
one to load the events those keys point at, one, only when a `shared`
event needs it, for the user's last join in each room, and one, only when
the user was not joined at some of the events, for which of their senders
erased their account (without a legal hold on the room or the sender).

Retention (MSC1763, homeserver/retention/): as in Synapse, non-state events
older than their room's max_lifetime are left out, whether or not the purge
job has removed their content yet (state events are never purged).

Erasure (deactivation with `erase`), as in Synapse: users who were joined
at an event of an erased user still see it as it was; everyone else who
may see it sees it with its content redacted (homeserver/erasure/content.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from homeserver.erasure.content import ErasedContent, pruned
from homeserver.retention.policy import RetentionPolicies
from storage.database import now_ms
from storage.events import EventStore, StoredEvent
from storage.history import HistoryStore, Position
from storage.state import StateKey, StateStore

WORLD_READABLE = "world_readable"
SHARED = "shared"
INVITED = "invited"
JOINED = "joined"
# Most permissive first.
_PERMISSIVENESS = (WORLD_READABLE, SHARED, INVITED, JOINED)

HISTORY_VISIBILITY_KEY: StateKey = ("m.room.history_visibility", "")


def visibility_of(content: Mapping[str, Any] | None) -> str:
    """The setting an m.room.history_visibility content names (`shared` if none or unknown)."""
    value = content.get("history_visibility") if content is not None else None
    return value if value in _PERMISSIVENESS else SHARED


def more_permissive(a: str, b: str) -> str:
    return a if _PERMISSIVENESS.index(a) <= _PERMISSIVENESS.index(b) else b


def may_see(
    *,
    visibility: str,
    membership: str | None,
    position: Position,
    last_join: Position | None,
) -> bool:
    """The spec's rule for one event, from the facts at it.

    `position` is the event's (depth, stream) key and `last_join` the key of
    the user's most recent join to the room, if they ever joined.
    """
    if visibility == WORLD_READABLE or membership == "join":
        return True
    if visibility == SHARED:
        return last_join is not None and last_join > position
    if visibility == INVITED:
        return membership == "invite"
    return False


def _membership_of(stored: StoredEvent | None) -> str | None:
    if stored is None:
        return None
    value = stored.event.content.get("membership")
    return value if isinstance(value, str) else None


def _is_visibility_change(stored: StoredEvent) -> bool:
    event = stored.event
    return (event.type, event.state_key) == HISTORY_VISIBILITY_KEY


class HistoryVisibility:
    def __init__(
        self,
        state: StateStore,
        events: EventStore,
        history: HistoryStore,
        erasure: ErasedContent,
        retention: RetentionPolicies | None = None,
    ) -> None:
        self._state = state
        self._events = events
        self._history = history
        self._erasure = erasure
        self._retention = retention

    def _expired(self, stored: StoredEvent, now: int) -> bool:
        """Whether a non-state event outlived its room's retention policy."""
        if self._retention is None or stored.event.state_key is not None:
            return False
        cutoff = self._retention.cutoff(stored.event.room_id, now)
        return cutoff is not None and stored.event.origin_server_ts < cutoff

    async def current(self, room_id: str) -> str:
        """The room's history visibility now."""
        event_id = await self._events.current_state_event_id(room_id, *HISTORY_VISIBILITY_KEY)
        found = await self._events.get_events([event_id]) if event_id else {}
        stored = found.get(event_id or "")
        return visibility_of(stored.event.content if stored else None)

    async def filter(self, user_id: str, events: Iterable[StoredEvent]) -> list[StoredEvent]:
        """The events `user_id` may see, in the order given (events of any rooms)."""
        now = now_ms()
        candidates = [
            e
            for e in events
            if e.rejected_reason is None and e.state_group is not None and not self._expired(e, now)
        ]
        if not candidates:
            return []
        member_key: StateKey = ("m.room.member", user_id)
        groups = await self._state.state_entries(
            {e.state_group for e in candidates if e.state_group is not None},
            [HISTORY_VISIBILITY_KEY, member_key],
        )
        wanted = {i for entries in groups.values() for i in entries.values()}
        wanted.update(e.replaces_state for e in candidates if e.replaces_state)
        loaded = await self._events.get_events(wanted)

        facts: list[tuple[StoredEvent, str, str | None] | None] = []
        for stored in candidates:
            event = stored.event
            if event.type == "m.room.member" and event.state_key == user_id:
                facts.append(None)
                continue
            entries = groups.get(stored.state_group or 0, {})
            setting = loaded.get(entries.get(HISTORY_VISIBILITY_KEY, ""))
            visibility = visibility_of(setting.event.content if setting else None)
            if _is_visibility_change(stored):
                previous = loaded.get(stored.replaces_state or "")
                visibility = more_permissive(
                    visibility, visibility_of(previous.event.content if previous else None)
                )
            membership = _membership_of(loaded.get(entries.get(member_key, "")))
            facts.append((stored, visibility, membership))

        needs_join = {
            f[0].event.room_id for f in facts if f is not None and f[1] == SHARED and f[2] != "join"
        }
        last_joins = await self._history.last_joins(user_id, needs_join) if needs_join else {}
        seen = [
            (stored, fact)
            for stored, fact in zip(candidates, facts, strict=True)
            if fact is None
            or may_see(
                visibility=fact[1],
                membership=fact[2],
                position=(stored.event.depth, stored.stream_ordering),
                last_join=last_joins.get(stored.event.room_id),
            )
        ]
        # Senders who erased their account: only users joined at an event see it whole.
        outsiders = {
            (s.event.room_id, s.event.sender)
            for s, fact in seen
            if fact is not None and fact[2] != "join"
        }
        erased = await self._erasure.erased_senders(outsiders) if outsiders else set()
        return [
            pruned(stored)
            if fact is not None
            and fact[2] != "join"
            and (stored.event.room_id, stored.event.sender) in erased
            else stored
            for stored, fact in seen
        ]

    async def state_as_seen(self, user_id: str, state: Sequence[StoredEvent]) -> list[StoredEvent]:
        """Room state with erasure alone applied: state is shown to members
        whatever history visibility says, but an erased sender's is redacted
        for those not joined when it was sent (ErasedContent.apply_to_state)."""
        return await self._erasure.apply_to_state(user_id, state)

    async def erasure_applied(
        self, user_id: str | None, events: Sequence[StoredEvent]
    ) -> list[StoredEvent]:
        """Events with erasure alone applied, for those shown along with an
        event the user may see (its bundled edits and thread replies)."""
        return await self._erasure.apply(user_id, events)

    async def visible(self, user_id: str, stored: StoredEvent) -> bool:
        return bool(await self.filter(user_id, [stored]))

    async def as_seen(self, user_id: str, stored: StoredEvent) -> StoredEvent | None:
        """The event as the user sees it (pruned, for an erased sender), or None."""
        found = await self.filter(user_id, [stored])
        return found[0] if found else None
