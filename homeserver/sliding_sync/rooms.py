"""The data of the rooms a sliding sync response carries (MSC4186 "Room
results"), each step one batch over all of them, so a response costs the
same number of queries for 1 room as for 100: timelines, their events and
visibility, the current state the rooms' configs ask for, the changed state
keys of rooms sent before, member counts and heroes, unread counts, stripped
state of invites and knocks, and the formatting.

A room the connection has not seen (`initial`) gets its newest events and
all of its required state; a room it has seen gets the events after what it
was sent and the required state that changed since (a stub with only `type`
and `state_key` for state that went away). Rooms the user left are shown as
they were at the leave; invites and knocks only by their stripped state.

The result uses the stable format's field names, with `timeline` for the
events; the API renames for each wire format.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import attrs

from homeserver.push.counts import ReadPositions, read_up_to
from homeserver.requester import Requester
from homeserver.rooms.format import EventFormatter
from homeserver.rooms.history import stream_token
from homeserver.rooms.visibility import HistoryVisibility
from homeserver.sliding_sync.model import MEMBER, RoomConfig, StatePattern
from homeserver.sliding_sync.room_list import ListRoom
from homeserver.sync.room_state import heroes
from homeserver.sync.rooms import STRIPPED_STATE_KEYS
from storage.events import EventStore, StoredEvent
from storage.history import TimelineQuery
from storage.push import MAIN_THREAD, PushStore
from storage.remote_membership import RemoteMembershipStore
from storage.sliding_sync import SlidingSyncStore
from storage.state import StateKey, StateStore
from storage.sync import MemberCounts, SyncStore, TimelineRange, TimelineRows

NAME: StateKey = ("m.room.name", "")
AVATAR: StateKey = ("m.room.avatar", "")


@attrs.frozen
class RoomWork:
    """A room to send, and how much of it."""

    room: ListRoom
    config: RoomConfig
    initial: bool
    # What the connection was sent of the room: events up to this position.
    sent_upto: int
    # The timeline_limit grew: the newest events again, older ones included.
    expanded_timeline: bool
    # The required_state grew: all of it again.
    expanded_state: bool
    # Names of the lists the room is in.
    lists: tuple[str, ...]
    is_dm: bool
    # Whether to say is_dm (initial, or it changed).
    send_dm: bool
    # Users whose member event the connection has of this room (lazy loading).
    members_sent: frozenset[str] = frozenset()

    @property
    def room_id(self) -> str:
        return self.room.room_id

    @property
    def membership(self) -> str:
        return self.room.membership.membership

    @property
    def shows_room(self) -> bool:
        """Joined, or was joined before leaving: events and state, not stripped state."""
        m = self.room.membership
        return m.membership == "join" or (m.membership in ("leave", "ban") and m.joined_in_range)


@attrs.define(eq=False)
class _Timeline:
    events: list[StoredEvent]
    limited: bool
    prev_batch: str


# A room's required_state ({key: event id, or None for a stub}), the current
# entries read (name and avatar among them), the keys changed since last sent.
_RoomState = tuple[dict[StateKey, str | None], dict[StateKey, str], set[StateKey]]


def _stub(key: StateKey) -> dict[str, Any]:
    return {"type": key[0], "state_key": key[1]}


class RoomDataBuilder:
    def __init__(
        self,
        store: SlidingSyncStore,
        sync_store: SyncStore,
        events: EventStore,
        state: StateStore,
        visibility: HistoryVisibility,
        formatter: EventFormatter,
        out_of_band: RemoteMembershipStore,
        push_store: PushStore,
        receipts: ReadPositions,
    ) -> None:
        self._store = store
        self._sync_store = sync_store
        self._events = events
        self._state = state
        self._visibility = visibility
        self._formatter = formatter
        self._out_of_band = out_of_band
        self._push_store = push_store
        self._receipts = receipts

    async def build(
        self,
        requester: Requester,
        works: Sequence[RoomWork],
        live_after: int | None,
        now: int,
        ignored: frozenset[str],
    ) -> tuple[dict[str, dict[str, Any]], dict[str, set[str]]]:
        """{room id: its entry}, and {room id: users whose member event it
        carries} of rooms with lazy members; `live_after` is where the
        connection's previous response ended (None on its first request:
        nothing is live), `now` where this one ends; `ignored`: the user's
        ignored users."""
        if not works:
            return {}, {}
        user_id = requester.user_id
        shown = [w for w in works if w.shows_room]
        joined = [w.room_id for w in shown if w.membership == "join"]
        # The reads that do not depend on each other go side by side, so a
        # response waits for the longest chain, not for every read in turn.
        (timelines, bodies, state), counts, unread, stripped = await asyncio.gather(
            self._timelines_and_state(requester, shown, ignored),
            self._member_counts(joined),
            self._unread(user_id, joined, now),
            self._stripped([w for w in works if not w.shows_room]),
        )
        known: dict[str, StoredEvent] = {
            e.event.event_id: e for t in timelines.values() for e in t.events
        }
        hero_ids = {
            w.room_id: heroes(counts[w.room_id], user_id)
            for w in shown
            if w.room_id in counts and NAME not in state[w.room_id][1]
        }
        wanted = {i for ids, _, _ in state.values() for i in ids.values() if i is not None}
        wanted |= {
            i for _, entries, _ in state.values() for k in (NAME, AVATAR) if (i := entries.get(k))
        }
        wanted |= {e for chosen in hero_ids.values() for _, e in chosen}
        # State of erased senders the user was not joined for comes redacted.
        loaded = await self._events.get_events(wanted - known.keys())
        known |= {
            s.event.event_id: s
            for s in await self._visibility.state_as_seen(user_id, list(loaded.values()))
        }
        # The timelines' events were formatted as soon as they were read.
        bodies |= await self._serialize(
            requester, timelines, {i: e for i, e in known.items() if i not in bodies}
        )

        def content(event_id: str | None) -> dict[str, Any] | None:
            stored = known.get(event_id) if event_id is not None else None
            return stored.event.content if stored is not None else None

        result: dict[str, dict[str, Any]] = {}
        members_sent: dict[str, set[str | None]] = {}
        for work in works:
            entry: dict[str, Any] = {
                "bump_stamp": work.room.bump_stamp,
                "membership": work.membership,
            }
            if work.initial:
                entry["initial"] = True
            if work.lists:
                entry["lists"] = list(work.lists)
            if work.send_dm:
                entry["is_dm"] = work.is_dm
            result[work.room_id] = entry
            if not work.shows_room:
                entry["stripped_state"] = stripped.get(work.room_id, [])
                continue
            timeline = timelines[work.room_id]
            ids, current, changed = state[work.room_id]
            entry["timeline"] = [bodies[e.event.event_id] for e in timeline.events]
            entry["prev_batch"] = timeline.prev_batch
            if timeline.limited:
                entry["limited"] = True
            if work.expanded_timeline and any(
                e.stream_ordering <= work.sent_upto for e in timeline.events
            ):
                entry["expanded_timeline"] = True
            after = work.sent_upto if not work.initial else live_after
            entry["num_live"] = (
                0 if after is None else sum(e.stream_ordering > after for e in timeline.events)
            )
            entry["required_state"] = [
                bodies[i] if i is not None else _stub(key)
                for key, i in ids.items()
                if i is None or i in bodies
            ]
            if work.config.lazy:
                members_sent[work.room_id] = {k[1] for k in ids if k[0] == MEMBER} | {
                    e.event.state_key for e in timeline.events if e.event.type == MEMBER
                }
            fresh = work.initial or work.expanded_state
            for key, field, part in ((NAME, "name", "name"), (AVATAR, "avatar", "url")):
                if fresh or key in changed:
                    value = (content(current.get(key)) or {}).get(part)
                    if isinstance(value, str) and value:
                        entry[field] = value
                    elif not fresh:
                        entry[field] = None
            if work.membership == "join" and work.room_id in counts:
                c = counts[work.room_id]
                entry["joined_count"] = c.joined
                entry["invited_count"] = c.invited
                entry["notification_count"], entry["highlight_count"] = unread.get(
                    work.room_id, (0, 0)
                )
                members_changed = any(k[0] == MEMBER for k in changed)
                chosen = hero_ids.get(work.room_id)
                if chosen and (fresh or members_changed):
                    entry["heroes"] = [self._hero(u, content(e)) for u, e in chosen]
        return result, {r: {u for u in users if u} for r, users in members_sent.items()}

    @staticmethod
    def _hero(user_id: str, member: dict[str, Any] | None) -> dict[str, Any]:
        hero: dict[str, Any] = {"user_id": user_id}
        for field in ("displayname", "avatar_url"):
            value = (member or {}).get(field)
            if isinstance(value, str) and value:
                hero[field] = value
        return hero

    async def _member_counts(self, room_ids: list[str]) -> dict[str, MemberCounts]:
        return await self._sync_store.member_counts(room_ids) if room_ids else {}

    async def _timelines_and_state(
        self, requester: Requester, works: Sequence[RoomWork], ignored: frozenset[str]
    ) -> tuple[dict[str, _Timeline], dict[str, dict[str, Any]], dict[str, _RoomState]]:
        """The timelines, their events in client format, and the required state."""

        async def timelines_and_bodies() -> tuple[dict[str, _Timeline], dict[str, dict[str, Any]]]:
            # Formatted (redactions, bundled aggregations) as soon as they
            # are read, beside the other reads of the response, not after.
            timelines = await self._timelines(requester.user_id, works, ignored)
            events = {e.event.event_id: e for t in timelines.values() for e in t.events}
            return timelines, await self._serialize(requester, timelines, events)

        if not any(w.config.lazy for w in works):
            # Without lazy members the state asked for does not depend on the
            # timelines: both are read side by side, so a woken long poll
            # waits for the longer chain of reads, not for both in turn.
            (timelines, bodies), state = await asyncio.gather(
                timelines_and_bodies(), self._required_state(works, {})
            )
            return timelines, bodies, state
        timelines, bodies = await timelines_and_bodies()
        return timelines, bodies, await self._required_state(works, timelines)

    async def _timelines(
        self, user_id: str, works: Sequence[RoomWork], ignored: frozenset[str]
    ) -> dict[str, _Timeline]:
        ranges = [
            TimelineRange(
                w.room_id,
                0 if w.initial or w.expanded_timeline else w.sent_upto,
                w.room.position,
                w.config.timeline_limit + 1 if w.config.timeline_limit else 0,
            )
            for w in works
        ]
        found = await self._sync_store.timelines(ranges, TimelineQuery(), ignored) if ranges else {}
        ids = [
            i
            for w in works
            for i, _ in found.get(w.room_id, TimelineRows([], False)).rows[
                : w.config.timeline_limit
            ]
        ]
        loaded = await self._events.get_events(ids)
        visible = {
            s.event.event_id: s
            for s in await self._visibility.filter(user_id, [loaded[i] for i in ids if i in loaded])
        }
        result = {}
        for w in works:
            rows = found.get(w.room_id, TimelineRows([], False)).rows
            limit = w.config.timeline_limit
            events = [visible[i] for i, _ in rows[:limit][::-1] if i in visible]
            prev = events[0].stream_ordering - 1 if events else w.room.position
            result[w.room_id] = _Timeline(events, len(rows) > limit, stream_token(prev))
        return result

    async def _required_state(
        self, works: Sequence[RoomWork], timelines: Mapping[str, _Timeline]
    ) -> dict[str, _RoomState]:
        """{room: ({key: event id, or None for a stub} of its required_state,
        the current entries read (name and avatar among them), the keys that
        changed since the connection's last look)}. `timelines` are needed
        only for the rooms whose config has lazy members."""
        lazy: dict[str, set[str]] = {}
        for w in works:
            if w.config.lazy:
                lazy[w.room_id] = {
                    u
                    for e in timelines[w.room_id].events
                    for u in (e.event.sender, e.event.state_key if e.event.type == MEMBER else None)
                    if u is not None
                }
        patterns = {p for w in works for r in w.config.required_state for p in r.include}
        joined = [w.room_id for w in works if w.membership == "join"]
        again = [w for w in works if not w.initial]
        current, changed = await asyncio.gather(
            self._current_state(joined, patterns, lazy),
            self._changed_state_keys(again),
        )
        left = [w for w in works if w.membership != "join"]
        if left:
            groups = await self._sync_store.state_groups_at(
                (w.room_id, w.room.position) for w in left
            )
            maps = await self._sync_store.states_of_groups(groups.values())
            for w in left:
                group = groups.get((w.room_id, w.room.position))
                current[w.room_id] = dict(maps.get(group, {})) if group is not None else {}
        result = {}
        for w in works:
            entries = current.get(w.room_id, {})
            room_changed = changed.get(w.room_id, set())
            if w.initial or w.expanded_state:
                keys = [k for k in entries if w.config.wants(*k)]
            else:
                keys = [k for k in room_changed if w.config.wants(*k)]
                if lazy.get(w.room_id) is not None and not timelines[w.room_id].limited:
                    # MSC4186: with lazy members, a gapless update carries
                    # every membership change.
                    keys += [k for k in room_changed if k[0] == MEMBER]
            chosen: dict[StateKey, str | None] = {k: entries.get(k) for k in keys}
            for user in sorted(lazy.get(w.room_id, ())):
                # MSC4186: lazy members not sent before on this connection,
                # or whose membership changed since.
                key = (MEMBER, user)
                if key in entries and (user not in w.members_sent or key in room_changed):
                    chosen.setdefault(key, entries[key])
            result[w.room_id] = (chosen, entries, room_changed)
        return result

    async def _current_state(
        self, joined: list[str], patterns: set[StatePattern], lazy: Mapping[str, set[str]]
    ) -> dict[str, dict[StateKey, str]]:
        """The current state entries of the joined rooms the patterns (and the
        lazy members, name and avatar) ask for."""
        if not joined:
            return {}
        return await self._store.current_state(
            joined,
            everything=any(p.type is None and p.state_key is None for p in patterns),
            types={p.type for p in patterns if p.type is not None and p.state_key is None},
            pairs={
                (p.type, p.state_key)
                for p in patterns
                if p.type is not None and p.state_key is not None
            }
            | {NAME, AVATAR}
            | {(MEMBER, u) for users in lazy.values() for u in users},
            state_keys={
                p.state_key for p in patterns if p.type is None and p.state_key is not None
            },
        )

    async def _changed_state_keys(self, again: Sequence[RoomWork]) -> dict[str, set[StateKey]]:
        """{room: state keys changed since the connection was last sent it}."""
        if not again:
            return {}
        return await self._sync_store.changed_state_keys(
            [(w.room_id, w.sent_upto, w.room.position) for w in again]
        )

    async def _unread(
        self, user_id: str, room_ids: Collection[str], now: int
    ) -> dict[str, tuple[int, int]]:
        """{room: (notifications, highlights)} of the main timeline (MSC4186:
        threads' counts are an extension's)."""
        if not room_ids:
            return {}
        positions = await self._receipts.thread_read_streams(user_id, list(room_ids))
        read = {room: read_up_to(positions.get(room, {})) for room in room_ids}
        counts = await self._push_store.unread_counts(user_id, read, now)
        totals: dict[str, tuple[int, int]] = {}
        for count in counts:
            if count.thread_id == MAIN_THREAD:
                n, h = totals.get(count.room_id, (0, 0))
                totals[count.room_id] = (n + count.notifications, h + count.highlights)
        return totals

    async def _stripped(self, works: Sequence[RoomWork]) -> dict[str, list[dict[str, Any]]]:
        """{room: stripped state of the invite or knock}: the recommended keys
        from the state at the membership event (or what another server sent
        with it), the sender's member event, and the membership event last."""
        if not works:
            return {}
        members = await self._events.get_events(w.room.membership.event_id for w in works)
        groups = {m.state_group for m in members.values() if m.state_group is not None}
        keys = [*STRIPPED_STATE_KEYS, *{(MEMBER, m.event.sender) for m in members.values()}]
        entries = await self._state.state_entries(groups, keys) if groups else {}
        sent_along = await self._out_of_band.stripped_state(
            m.event.event_id for m in members.values() if m.state_group is None
        )
        wanted = {
            i
            for m in members.values()
            if m.state_group is not None
            for i in entries.get(m.state_group, {}).values()
        }
        loaded = await self._events.get_events(wanted)
        result = {}
        for w in works:
            member = members.get(w.room.membership.event_id)
            if member is None:
                continue
            events: list[dict[str, Any]] = []
            if member.state_group is not None:
                state = entries.get(member.state_group, {})
                for key in (*STRIPPED_STATE_KEYS, (MEMBER, member.event.sender)):
                    stored = loaded.get(state.get(key, ""))
                    if stored is not None and stored.event.event_id != member.event.event_id:
                        events.append(_strip(stored))
            # What another server sent may be full PDUs (MSC4311): clients
            # get the stripped fields only.
            events += [
                {k: s[k] for k in ("type", "state_key", "content", "sender")}
                for s in sent_along.get(member.event.event_id, [])
                if isinstance(s, dict)
                and isinstance(s.get("type"), str)
                and isinstance(s.get("state_key"), str)
                and isinstance(s.get("content"), dict)
                and isinstance(s.get("sender"), str)
            ]
            events.append(_strip(member))
            result[w.room_id] = events
        return result

    async def _serialize(
        self,
        requester: Requester,
        timelines: Mapping[str, _Timeline],
        known: Mapping[str, StoredEvent],
    ) -> dict[str, dict[str, Any]]:
        """{event id: client format}; as in /sync, only limited timelines get
        bundled aggregations."""
        bundled = {e.event.event_id for t in timelines.values() if t.limited for e in t.events}
        parts = await asyncio.gather(
            *(
                self._formatter.serialize(chosen, requester, aggregations=aggregations)
                for chosen, aggregations in (
                    ([e for i, e in known.items() if i in bundled], True),
                    ([e for i, e in known.items() if i not in bundled], False),
                )
                if chosen
            )
        )
        return {b["event_id"]: b for bodies in parts for b in bodies}


def _strip(stored: StoredEvent) -> dict[str, Any]:
    e = stored.event
    return {"type": e.type, "state_key": e.state_key, "content": e.content, "sender": e.sender}
