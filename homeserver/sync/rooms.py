"""The rooms part of /sync: rooms.join, rooms.leave, rooms.invite and rooms.knock.

For each room room_plan.py chose, the timeline is the newest events of its
range that pass the filter and that the user may see (history visibility;
state events that are the room's current state are always shown, as in
Synapse), oldest first, with `limited` when older events of the range were left out
and `prev_batch` a /messages token for the gap just before the first event
(the end of the range, as in Synapse, when the whole range fits).
The state and summary follow room_state.py; invited and knocked rooms get
stripped state. As in Synapse, the messages (not the state events) of users
in the user's m.ignored_user_list are left out, and so are their invites.

Every step is one batch over all the rooms at once (storage/sync.py), so a
sync costs the same number of queries for 1 room as for 100:
memberships, ignored users, timelines, their events, visibility, the state
groups and changed keys the state needs, the state maps, their events,
member counts and the events a summary names, stripped state, and the
formatting; when history visibility leaves timelines short, up to
`_FILL_ROUNDS` more rounds of timeline reads fill them from further back.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import attrs

from homeserver.ignored import IgnoredUsers
from homeserver.invite_permission import InviteBlocking
from homeserver.rooms.format import EventFormatter
from homeserver.rooms.history import stream_token
from homeserver.rooms.visibility import HistoryVisibility
from homeserver.sync.filter import event_allowed, room_allowed
from homeserver.sync.response import SyncRequest, room_entry
from homeserver.sync.room_plan import RoomPlan, StrippedRoom, plan_rooms
from homeserver.sync.room_state import (
    MEMBER,
    delta_state_ids,
    full_state_ids,
    heroes,
    lazy_members,
    state_after_delta_ids,
    state_after_full_ids,
    state_before,
    summary,
    timeline_senders,
)
from homeserver.sync.sent_members import SentMembers
from homeserver.sync.shared_reads import SharedReads
from storage.events import EventStore, StoredEvent
from storage.history import TimelineQuery
from storage.remote_membership import RemoteMembershipStore
from storage.state import StateKey, StateMap, StateStore
from storage.sync import SyncStore, TimelineRange, TimelineRows

DEFAULT_TIMELINE_LIMIT = 10
# A filter may ask for any number of timeline events (filters are validated
# for type, not size); a sync answers at most this many per room.
MAX_TIMELINE_LIMIT = 1000
# The widest range of stream positions (events of any room) an incremental
# sync finds its changed rooms in by scanning those events; beyond it (a
# client back after a long time) every room of the user is looked at.
ACTIVE_SCAN_SPAN = 20_000
# Further reads for timelines that history visibility left short (Synapse: 5 in all).
_FILL_ROUNDS = 4
# The timeline filter's fields that can leave events of the range out.
_NARROWING_KEYS = ("types", "not_types", "senders", "not_senders", "contains_url")
# What invitees and knockers see of a room (the spec's recommended stripped state).
STRIPPED_STATE_KEYS: tuple[StateKey, ...] = (
    ("m.room.create", ""),
    ("m.room.join_rules", ""),
    ("m.room.name", ""),
    ("m.room.avatar", ""),
    ("m.room.topic", ""),
    ("m.room.canonical_alias", ""),
    ("m.room.encryption", ""),
)


@attrs.define(eq=False)
class _Room:
    plan: RoomPlan
    # Visible events, oldest first.
    timeline: list[StoredEvent]
    limited: bool
    prev_batch: str
    # Every event from the timeline's first to the end of the range is in it.
    complete: bool
    # Every event of the range is in the timeline.
    gapless: bool
    # The oldest event the timeline was read back to, while older ones remain.
    scanned_to: int | None = None
    state_ids: list[str] = attrs.Factory(list)
    summary: dict[str, Any] | None = None

    @property
    def room_id(self) -> str:
        return self.plan.room_id


def _timeline_query(timeline_filter: dict[str, Any]) -> TimelineQuery:
    return TimelineQuery(
        types=timeline_filter.get("types"),
        not_types=timeline_filter.get("not_types", ()),
        senders=timeline_filter.get("senders"),
        not_senders=timeline_filter.get("not_senders", ()),
        contains_url=timeline_filter.get("contains_url"),
    )


def _client(body: dict[str, Any]) -> dict[str, Any]:
    """Events in /sync carry no room_id: the room is the key they are under.

    Taken out of the body in place: each body is made for this response
    alone (`_serialize`), and a copy of every event of an initial sync of a
    user in thousands of rooms was a tenth of its CPU.
    """
    body.pop("room_id", None)
    return body


def _federation(stored: StoredEvent, body: dict[str, Any]) -> dict[str, Any]:
    """An event as a filter with `event_format: federation` asks: the PDU as
    signed (content redacted if the event is), with its id and the unsigned
    data a client gets."""
    return {
        **stored.event.pdu,
        "content": body["content"],
        "event_id": stored.event.event_id,
        "unsigned": body.get("unsigned", {}),
    }


def _stripped(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("type", "state_key", "content", "sender")}


def _is_stripped(event: dict[str, Any]) -> bool:
    """Whether another server's stripped state event has the fields clients need."""
    return (
        isinstance(event.get("type"), str)
        and isinstance(event.get("state_key"), str)
        and isinstance(event.get("content"), dict)
        and isinstance(event.get("sender"), str)
    )


class RoomsSyncProvider:
    # Every room an incremental sync reports has an event (a message or a
    # membership change) in the range: nothing to do unless events moved.
    sync_streams = ("events",)

    def __init__(
        self,
        store: SyncStore,
        events: EventStore,
        state: StateStore,
        visibility: HistoryVisibility,
        formatter: EventFormatter,
        ignored: IgnoredUsers,
        out_of_band: RemoteMembershipStore,
        sent_members: SentMembers | None = None,
        invite_policy: InviteBlocking | None = None,
        shared: SharedReads | None = None,
    ) -> None:
        # Users who block invites see none (MSC4380).
        self._invite_policy = invite_policy
        self._store = store
        # Timelines read once for all the polls woken by the same event.
        self._read_timelines = shared.timelines if shared is not None else store.timelines
        self._sent_members = sent_members or SentMembers()
        # The stripped state other servers sent with invites and knocks.
        self._out_of_band = out_of_band
        self._events = events
        self._state = state
        self._visibility = visibility
        self._formatter = formatter
        self._ignored = ignored

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
        user_id = request.user_id
        now = request.now["events"]
        # A token from ahead of this server's position has nothing new to report.
        since = None if request.since is None else min(request.since["events"], now)
        room_filter = request.filter.get("room", {})
        state_filter = room_filter.get("state", {})
        lazy = bool(state_filter.get("lazy_load_members", False))
        if since is not None and not request.full_state and now - since <= ACTIVE_SCAN_SPAN:
            # Only rooms with events in the range can be reported: a user in
            # thousands of rooms pays for the few that changed.
            memberships = await self._store.changed_memberships(user_id, since, now)
        else:
            memberships = await self._store.memberships(user_id, since or 0, now)
        ignored = await self._ignored.ignored_users(user_id)
        plans, stripped = plan_rooms(
            user_id,
            memberships,
            since=since,
            now=now,
            full_state=request.full_state,
            room_filter=room_filter,
            ignored=ignored,
            block_invites=self._invite_policy is not None
            and await self._invite_policy.blocks_invites(user_id),
        )
        rooms = await self._timelines(user_id, plans, room_filter.get("timeline", {}), ignored)
        # Timeline events last: they are as the user sees them (pruned, for erased senders).
        after = request.state_after is not None
        state = await self._room_state(user_id, rooms, lazy, state_filter, after)
        # State of erased senders the user was not joined for comes redacted.
        known = {
            s.event.event_id: s
            for s in await self._visibility.state_as_seen(user_id, list(state.values()))
        }
        known |= {e.event.event_id: e for r in rooms for e in r.timeline}
        rooms = [r for r in rooms if r.plan.always or r.timeline or r.state_ids]
        known |= await self._summaries(user_id, rooms, lazy, known)
        if lazy and not state_filter.get("include_redundant_members", False):
            self._leave_out_sent_members(request, rooms, known, after)
        stripped_ids, stripped_events = await self._stripped_state(stripped)
        known |= stripped_events
        # Invites and knocks out of band: their stripped state came with them.
        out_of_band = [
            i.event_id
            for i in stripped
            if i.event_id in known and known[i.event_id].state_group is None
        ]
        sent_along = await self._out_of_band.stripped_state(out_of_band) if out_of_band else {}

        by_id = await self._serialize(request, rooms, known)
        as_federation = request.filter.get("event_format") == "federation"
        shown = (lambda b: b) if as_federation else _client
        for room in rooms:
            entry = room_entry(response, room.plan.section, room.room_id)
            entry["timeline"] = {
                "events": [shown(by_id[e.event.event_id]) for e in room.timeline],
                "limited": room.limited,
                "prev_batch": room.prev_batch,
            }
            entry[request.state_after or "state"] = {
                "events": [shown(by_id[i]) for i in room.state_ids]
            }
            if room.plan.section == "join":
                entry["summary"] = room.summary or {}
                # As in Synapse, a joined room always has the key; the
                # typing and receipt providers add to it.
                entry.setdefault("ephemeral", {"events": []})
        for invited in stripped:
            ids = stripped_ids.get(invited.room_id, [])
            events = [_stripped(by_id[i]) for i in ids[:-1]]
            events.extend(
                _stripped(s) for s in sent_along.get(invited.event_id, []) if _is_stripped(s)
            )
            events.extend(_client(by_id[i]) for i in ids[-1:])
            entry = room_entry(response, invited.section, invited.room_id)
            entry[f"{invited.section}_state"] = {"events": events}

    def _leave_out_sent_members(
        self,
        request: SyncRequest,
        rooms: Sequence[_Room],
        known: dict[str, StoredEvent],
        after: bool,
    ) -> None:
        """Drop from the state the member events this device already has
        (see sent_members.py), and remember the ones it gets now (with
        `state_after`, not the timeline's: such a client takes state only
        from `state_after`)."""
        device = (request.user_id, request.requester.device_id)
        if request.since is None:
            self._sent_members.forget(device)
        for room in rooms:
            if request.since is not None:
                room.state_ids = [
                    i
                    for i in room.state_ids
                    if known[i].event.type != MEMBER
                    or not self._sent_members.was_sent(
                        device, room.room_id, known[i].event.state_key or "", i
                    )
                ]
            timeline = () if after else room.timeline
            for stored in [*(known[i] for i in room.state_ids), *timeline]:
                event = stored.event
                if event.type == MEMBER and event.state_key is not None:
                    self._sent_members.remember(
                        device, room.room_id, event.state_key, event.event_id
                    )

    async def _serialize(
        self, request: SyncRequest, rooms: Sequence[_Room], known: dict[str, StoredEvent]
    ) -> dict[str, dict[str, Any]]:
        """{event id: client format}. As in Synapse, only the timelines of rooms
        with a gap get bundled aggregations: a client that saw every event of
        a range saw the relations in it arrive."""
        bundled = {e.event.event_id for r in rooms if r.limited for e in r.timeline}
        bodies = []
        for events, aggregations in (
            ([e for i, e in known.items() if i in bundled], True),
            ([e for i, e in known.items() if i not in bundled], False),
        ):
            if events:
                bodies += await self._formatter.serialize(
                    events, request.requester, aggregations=aggregations
                )
        if request.filter.get("event_format") == "federation":
            return {b["event_id"]: _federation(known[b["event_id"]], b) for b in bodies}
        return {b["event_id"]: b for b in bodies}

    async def _timelines(
        self,
        user_id: str,
        plans: Sequence[RoomPlan],
        timeline_filter: dict[str, Any],
        ignored: Collection[str],
    ) -> list[_Room]:
        """Each room's visible timeline; rooms with nothing in their range and
        no reason to be reported regardless are left out."""
        if not plans:
            return []
        limit = min(timeline_filter.get("limit", DEFAULT_TIMELINE_LIMIT), MAX_TIMELINE_LIMIT)
        narrowed = bool(ignored) or any(k in timeline_filter for k in _NARROWING_KEYS)
        ranges = [
            TimelineRange(
                p.room_id, p.lo, p.hi, limit + 1 if room_allowed(timeline_filter, p.room_id) else 0
            )
            for p in plans
        ]
        query = _timeline_query(timeline_filter)
        found = await self._read_timelines(ranges, query, ignored)
        seen = await self._seen(
            user_id, [i for rows in found.values() for i, _ in rows.rows[:limit]]
        )
        rooms = []
        for plan, wanted in zip(plans, ranges, strict=True):
            rows = found.get(plan.room_id, TimelineRows([], False))
            if not plan.always and not rows.any_events:
                continue
            kept = rows.rows[:limit][::-1]
            shown = [i in seen for i, _ in kept]
            timeline = [seen[i] for i, _ in kept if i in seen]
            first = shown.index(True) if timeline else len(kept)
            exact = not narrowed and wanted.limit > 0
            more = len(rows.rows) > limit
            if plan.full_state and not more:
                # As in Synapse: a room learnt afresh whose whole history fits
                # the timeline gets the end of the range as prev_batch, from
                # which /messages pages back over the same events.
                prev = plan.hi
            elif timeline:
                prev = timeline[0].stream_ordering - 1
            elif kept:
                prev = kept[0][1] - 1
            else:
                prev = plan.hi
            rooms.append(
                _Room(
                    plan,
                    timeline,
                    limited=more or plan.newly_joined,
                    prev_batch=stream_token(prev),
                    complete=exact and bool(timeline) and all(shown[first:]),
                    gapless=exact and not more and all(shown),
                    scanned_to=kept[0][1] if kept and more else None,
                )
            )
        await self._fill_hidden(user_id, rooms, limit, query, ignored)
        return rooms

    async def _seen(self, user_id: str, ids: Sequence[str]) -> dict[str, StoredEvent]:
        """{event id: the event as the user sees it} of those they may see."""
        loaded = await self._events.get_events(ids)
        candidates = [loaded[i] for i in ids if i in loaded]
        # Erased senders' events may come back pruned.
        seen = {s.event.event_id: s for s in await self._visibility.filter(user_id, candidates)}
        # As in Synapse, state events that are the room's current state are
        # shown whatever history visibility says (a client must see the
        # joins that happened while the user was away).
        current = await self._store.in_current_state(
            (s.event.event_id, s.event.room_id, s.event.type, s.event.state_key)
            for s in candidates
            if s.event.state_key is not None and s.event.event_id not in seen
        )
        shown = await self._visibility.state_as_seen(user_id, [loaded[i] for i in current])
        return seen | {s.event.event_id: s for s in shown}

    async def _fill_hidden(
        self,
        user_id: str,
        rooms: Sequence[_Room],
        limit: int,
        query: TimelineQuery,
        ignored: Collection[str],
    ) -> None:
        """Timelines that history visibility left short, with older events
        beyond them, are filled from further back, as Synapse does: a few
        rounds, each one batch over all such rooms."""
        load = max(limit * 2, 10)
        for _ in range(_FILL_ROUNDS):
            short = {
                r.room_id: (r, r.scanned_to)
                for r in rooms
                if r.scanned_to is not None and len(r.timeline) < limit
            }
            if not short:
                return
            ranges = [
                TimelineRange(r.room_id, r.plan.lo, below - 1, load + 1)
                for r, below in short.values()
            ]
            found = await self._read_timelines(ranges, query, ignored)
            seen = await self._seen(user_id, [i for f in found.values() for i, _ in f.rows[:load]])
            for room, _ in short.values():
                rows = found.get(room.room_id, TimelineRows([], False)).rows[: load + 1]
                older = [seen[i] for i, _ in rows[:load] if i in seen][: limit - len(room.timeline)]
                room.timeline[:0] = older[::-1]
                room.complete = room.gapless = False
                room.scanned_to = rows[load - 1][1] if len(rows) > load else None
                if room.timeline:
                    room.prev_batch = stream_token(room.timeline[0].stream_ordering - 1)

    async def _room_state(
        self,
        user_id: str,
        rooms: Sequence[_Room],
        lazy: bool,
        state_filter: dict[str, Any],
        after: bool,
    ) -> dict[str, StoredEvent]:
        """Fill each room's state_ids (see room_state.py): the state before the
        timeline, or with `after` (MSC4222) the state at its end. Returns the
        state events."""
        shown = [r for r in rooms if r.plan.show_state]
        if after:
            # Every incremental room: the end state is compared with `since`
            # whether or not the timeline shows every event of the range.
            delta = [r for r in shown if not r.plan.full_state]
            gappy = delta
        else:
            delta = [r for r in shown if not r.plan.full_state and (not r.gapless or lazy)]
            gappy = [r for r in delta if not r.gapless]
        points = {(r.room_id, r.plan.hi) for r in shown if after or not r.complete}
        points |= {(r.room_id, r.plan.lo) for r in gappy}
        groups_at = await self._store.state_groups_at(points) if points else {}
        gappy_set = set(gappy)
        changed = (
            await self._store.changed_state_keys([(r.room_id, r.plan.lo, r.plan.hi) for r in gappy])
            if gappy
            else {}
        )
        lazy_sets: dict[str, set[str]] = {}
        if lazy:
            for r in shown:
                lazy_sets[r.room_id] = (
                    timeline_senders(r.timeline) if after else lazy_members(r.timeline)
                )
                if r.plan.full_state:
                    lazy_sets[r.room_id].add(user_id)

        def start_group(r: _Room) -> int | None:
            if after:
                return None
            if r.timeline:
                return r.timeline[0].state_group
            return groups_at.get((r.room_id, r.plan.hi))

        def end_group(r: _Room) -> int | None:
            return groups_at.get((r.room_id, r.plan.hi)) if after or not r.complete else None

        def since_group(r: _Room) -> int | None:
            return groups_at.get((r.room_id, r.plan.lo)) if r in gappy_set else None

        full = [r for r in shown if r.plan.full_state]
        full_groups = {g for r in full for g in (start_group(r), end_group(r)) if g is not None}
        full_maps = (
            await self._store.states_of_groups(
                full_groups,
                {u for r in full for u in lazy_sets[r.room_id]} if lazy else None,
            )
            if full_groups
            else {}
        )
        keys: set[StateKey] = set()
        for r in delta:
            keys |= changed.get(r.room_id, set())
            keys |= {(MEMBER, u) for u in lazy_sets.get(r.room_id, ())}
        delta_groups = {
            g
            for r in delta
            for g in (start_group(r), end_group(r), since_group(r))
            if g is not None
        }
        delta_maps = (
            await self._state.state_entries(delta_groups, list(keys))
            if delta_groups and keys
            else {}
        )

        def state_map(maps: dict[int, StateMap], group: int | None) -> StateMap | None:
            return maps.get(group, {}) if group is not None else None

        for r in shown:
            maps = full_maps if r.plan.full_state else delta_maps
            room_lazy = lazy_sets.get(r.room_id) if lazy else None
            end = state_map(maps, end_group(r))
            if after:
                if r.plan.full_state:
                    r.state_ids = state_after_full_ids(end or {}, room_lazy)
                else:
                    r.state_ids = state_after_delta_ids(
                        changed.get(r.room_id, ()),
                        end or {},
                        state_map(maps, since_group(r)) or {},
                        room_lazy,
                    )
                continue
            start = state_map(maps, start_group(r)) or {}
            if r.timeline:
                start = state_before(r.timeline[0], start)
            in_timeline = {e.event.event_id for e in r.timeline}
            if r.plan.full_state:
                r.state_ids = full_state_ids(start, end, in_timeline, room_lazy)
            elif r in delta:
                r.state_ids = delta_state_ids(
                    changed.get(r.room_id, ()),
                    start,
                    end,
                    None if r.gapless else state_map(maps, since_group(r)) or {},
                    in_timeline,
                    room_lazy,
                )
        loaded = await self._events.get_events({i for r in shown for i in r.state_ids})
        for r in shown:
            r.state_ids = [
                i
                for i in r.state_ids
                if i in loaded
                and event_allowed(
                    state_filter,
                    loaded[i].event.type,
                    sender=loaded[i].event.sender,
                    room_id=r.room_id,
                )
            ]
        return loaded

    async def _summaries(
        self,
        user_id: str,
        rooms: Sequence[_Room],
        lazy: bool,
        known: dict[str, StoredEvent],
    ) -> dict[str, StoredEvent]:
        """Summaries of joined rooms the client learns afresh or whose membership
        changed; with lazy loading, the heroes' member events join the state.
        Returns the events loaded for that."""

        def has_members(r: _Room) -> bool:
            return any(e.event.type == MEMBER for e in r.timeline) or any(
                known[i].event.type == MEMBER for i in r.state_ids
            )

        wanted = [
            r for r in rooms if r.plan.section == "join" and (r.plan.full_state or has_members(r))
        ]
        if not wanted:
            return {}
        counts = await self._store.member_counts(r.room_id for r in wanted)
        names = [
            i for c in counts.values() for i in (c.name_event_id, c.alias_event_id) if i is not None
        ]
        candidates = [e for c in counts.values() for _u, _m, e in c.hero_candidates]
        loaded = await self._events.get_events([*names, *(candidates if lazy else ())])

        def content(event_id: str | None, field: str) -> Any:
            stored = loaded.get(event_id) if event_id is not None else None
            return stored.event.content.get(field) if stored is not None else None

        for r in wanted:
            c = counts.get(r.room_id)
            if c is None:
                continue
            if content(c.name_event_id, "name") or content(c.alias_event_id, "alias"):
                r.summary = summary(c, None)
                continue
            chosen = heroes(c, user_id)
            r.summary = summary(c, [u for u, _ in chosen])
            if lazy:
                have = {
                    stored.event.state_key
                    for stored in [*r.timeline, *(known[i] for i in r.state_ids)]
                    if stored.event.type == MEMBER
                }
                r.state_ids.extend(e for u, e in chosen if u not in have and e in loaded)
        return loaded

    async def _stripped_state(
        self, rooms: Sequence[StrippedRoom]
    ) -> tuple[dict[str, list[str]], dict[str, StoredEvent]]:
        """{room: ids of its stripped state, the invite or knock itself last},
        from the state after that event, with the member event of its sender."""
        if not rooms:
            return {}, {}
        members = await self._events.get_events(r.event_id for r in rooms)
        groups = {m.state_group for m in members.values() if m.state_group is not None}
        keys = [*STRIPPED_STATE_KEYS, *{(MEMBER, m.event.sender) for m in members.values()}]
        entries = await self._state.state_entries(groups, keys) if groups else {}
        ids: dict[str, list[str]] = {}
        for room in rooms:
            member = members.get(room.event_id)
            if member is None:
                continue
            state = entries.get(member.state_group, {}) if member.state_group is not None else {}
            chosen = [state.get(k) for k in (*STRIPPED_STATE_KEYS, (MEMBER, member.event.sender))]
            ids[room.room_id] = [i for i in chosen if i is not None and i != room.event_id]
            ids[room.room_id].append(room.event_id)
        loaded = await self._events.get_events({i for v in ids.values() for i in v})
        return {room: [i for i in v if i in loaded] for room, v in ids.items()}, loaded
