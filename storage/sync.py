"""The reads behind the rooms part of /sync, each batched over all of a user's rooms.

A sync asks the same few questions of every room the user is in: what was
my membership at `since` and at `now`, which events arrived in between (the
newest few of them), which state group stood at a position, which state
keys changed, what is the state of these groups, how many members are there.
Each question is one statement for all the rooms at once, so a sync costs a
bounded number of queries however many rooms the user is in.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence

import asyncpg
import attrs

from storage.history import TimelineQuery
from storage.state import StateKey, StateMap


@attrs.frozen
class Membership:
    """A user's membership in one room as of `now`, and how it moved since `since`."""

    room_id: str
    event_id: str
    stream_ordering: int
    sender: str
    membership: str
    membership_at_since: str | None
    # A join of the user's in (since, now].
    joined_in_range: bool
    # A member event of the user's other than a join in (since, now].
    left_in_range: bool
    forgotten: bool


@attrs.frozen
class TimelineRange:
    """The events of a room a sync may report: stream positions in (lo, hi]."""

    room_id: str
    lo: int
    hi: int
    # How many of the newest events to fetch (0: the timeline is filtered away).
    limit: int


@attrs.frozen
class TimelineRows:
    # (event id, stream ordering) of the newest matching events, newest first.
    rows: list[tuple[str, int]]
    # Whether the range holds any event at all, matching the filter or not.
    any_events: bool


@attrs.frozen
class MemberCounts:
    joined: int
    invited: int
    name_event_id: str | None
    alias_event_id: str | None
    # (user id, membership, event id) of up to six members (the user among
    # them, perhaps): joined first, then invited, then departed, each oldest
    # first. Synapse picks heroes from these.
    hero_candidates: list[tuple[str, str, str]]


def _like(glob: str) -> str:
    """A LIKE pattern (escape character backslash) matching what the glob matches."""
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


_MEMBERSHIPS_OF_ALL = """
WITH mine AS (
    SELECT room_id, event_id, stream_ordering, sender,
           json::jsonb -> 'content' ->> 'membership' AS membership
    FROM events
    WHERE type = 'm.room.member' AND state_key = $1 AND stream_ordering <= $3
      AND rejected_reason IS NULL AND NOT soft_failed
)
"""

# The same for only the rooms with an event (any, outliers too) in ($2, $3]:
# found through the stream_ordering index, then the user's member events of
# those rooms only (events_room_member), so that the cost follows the rooms
# that changed, not all the user's rooms.
_MEMBERSHIPS_OF_ACTIVE = """
WITH active AS (
    SELECT DISTINCT room_id FROM events WHERE stream_ordering > $2 AND stream_ordering <= $3
), mine AS (
    SELECT e.room_id, e.event_id, e.stream_ordering, e.sender,
           e.json::jsonb -> 'content' ->> 'membership' AS membership
    FROM active a
    JOIN events e ON e.room_id = a.room_id AND e.type = 'm.room.member' AND e.state_key = $1
    WHERE e.stream_ordering <= $3 AND e.rejected_reason IS NULL AND NOT e.soft_failed
)
"""

_MEMBERSHIPS_FROM_MINE = """
SELECT m.room_id,
       (array_agg(m.event_id ORDER BY m.stream_ordering DESC))[1] AS event_id,
       max(m.stream_ordering) AS stream_ordering,
       (array_agg(m.sender ORDER BY m.stream_ordering DESC))[1] AS sender,
       (array_agg(m.membership ORDER BY m.stream_ordering DESC))[1] AS membership,
       (array_agg(m.membership ORDER BY m.stream_ordering DESC)
            FILTER (WHERE m.stream_ordering <= $2))[1] AS membership_at_since,
       coalesce(bool_or(m.membership = 'join' AND m.stream_ordering > $2), false)
           AS joined_in_range,
       coalesce(bool_or(m.membership <> 'join' AND m.stream_ordering > $2), false)
           AS left_in_range,
       bool_or(f.user_id IS NOT NULL) AS forgotten
FROM mine m
LEFT JOIN room_forgotten f ON f.user_id = $1 AND f.room_id = m.room_id
GROUP BY m.room_id
"""

_MEMBERSHIPS = _MEMBERSHIPS_OF_ALL + _MEMBERSHIPS_FROM_MINE
_ACTIVE_MEMBERSHIPS = _MEMBERSHIPS_OF_ACTIVE + _MEMBERSHIPS_FROM_MINE

# $1-$4 the ranges, $5-$9 the TimelineQuery, $10 ignored users (whose
# messages are left out, not their state events). Outliers and rejected
# events are never in a timeline.
_TIMELINES = """
SELECT r.room_id, r.any_events, e.event_id, e.stream_ordering
FROM (
    SELECT u.room_id, u.lo, u.hi, u.n,
           EXISTS (SELECT 1 FROM events x
                   WHERE x.room_id = u.room_id AND NOT x.outlier
                     AND x.stream_ordering > u.lo AND x.stream_ordering <= u.hi) AS any_events
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::int[]) AS u(room_id, lo, hi, n)
) r
LEFT JOIN LATERAL (
    SELECT event_id, stream_ordering FROM events
    WHERE room_id = r.room_id AND stream_ordering > r.lo AND stream_ordering <= r.hi
      AND NOT outlier AND rejected_reason IS NULL
      AND ($5::text[] IS NULL OR type LIKE ANY($5::text[]))
      AND NOT (type LIKE ANY($6::text[]))
      AND ($7::text[] IS NULL OR sender = ANY($7::text[]))
      AND NOT (sender = ANY($8::text[]))
      AND ($9::boolean IS NULL OR $9::boolean = (
          jsonb_typeof(json::jsonb -> 'content' -> 'url') IS NOT DISTINCT FROM 'string'))
      AND NOT (state_key IS NULL AND sender = ANY($10::text[]))
    ORDER BY room_id DESC, stream_ordering DESC
    LIMIT r.n
) e ON TRUE
"""

_GROUPS_AT = """
SELECT p.room_id, p.pos, e.state_group
FROM unnest($1::text[], $2::bigint[]) AS p(room_id, pos)
CROSS JOIN LATERAL (
    SELECT state_group FROM events
    WHERE room_id = p.room_id AND stream_ordering <= p.pos
      AND state_group IS NOT NULL AND NOT outlier AND rejected_reason IS NULL
    -- In the order of events_room_stream, so that it walks back from `pos`
    -- in this room instead of through every room's events.
    ORDER BY room_id DESC, stream_ordering DESC LIMIT 1
) e
"""

_CHANGED_KEYS = """
SELECT DISTINCT e.room_id, e.type, e.state_key
FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS r(room_id, lo, hi)
JOIN events e ON e.room_id = r.room_id
    AND e.stream_ordering > r.lo AND e.stream_ordering <= r.hi
WHERE e.state_key IS NOT NULL AND NOT e.outlier AND e.rejected_reason IS NULL
"""

# Every entry of every group, merging each group's delta chain; with $2 set,
# member entries only for those users.
_STATES = """
WITH RECURSIVE chain(start, id, prev, n) AS (
    SELECT id, id, prev_group, 0 FROM state_groups WHERE id = ANY($1)
    UNION ALL
    SELECT c.start, g.id, g.prev_group, c.n + 1
    FROM state_groups g JOIN chain c ON g.id = c.prev
)
SELECT DISTINCT ON (c.start, e.type, e.state_key) c.start, e.type, e.state_key, e.event_id
FROM chain c JOIN state_group_entries e ON e.group_id = c.id
WHERE $2::text[] IS NULL OR e.type <> 'm.room.member' OR e.state_key = ANY($2::text[])
ORDER BY c.start, e.type, e.state_key, c.n
"""

_COUNTS = """
SELECT r.room_id,
    (SELECT count(*) FROM current_state c
     WHERE c.room_id = r.room_id AND c.type = 'm.room.member' AND c.membership = 'join')
        AS joined,
    (SELECT count(*) FROM current_state c
     WHERE c.room_id = r.room_id AND c.type = 'm.room.member' AND c.membership = 'invite')
        AS invited,
    (SELECT event_id FROM current_state
     WHERE room_id = r.room_id AND type = 'm.room.name' AND state_key = '') AS name_id,
    (SELECT event_id FROM current_state
     WHERE room_id = r.room_id AND type = 'm.room.canonical_alias' AND state_key = '')
        AS alias_id,
    (SELECT json_agg(json_build_array(h.state_key, h.membership, h.event_id))
     FROM (SELECT c.state_key, c.membership, c.event_id
           FROM current_state c JOIN events e ON e.event_id = c.event_id
           WHERE c.room_id = r.room_id AND c.type = 'm.room.member'
             AND c.membership IN ('join', 'invite', 'leave', 'ban')
           ORDER BY CASE c.membership WHEN 'join' THEN 1 WHEN 'invite' THEN 2 ELSE 3 END,
                    e.stream_ordering
           LIMIT 6) h) AS heroes
FROM unnest($1::text[]) AS r(room_id)
"""


class SyncStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def memberships(self, user_id: str, since: int, now: int) -> list[Membership]:
        """The user's membership at `now` in every room they ever had one in, with
        what it was at `since` (0 for an initial sync). Out-of-band member events
        (outliers, such as invites over federation) count."""
        return self._memberships(await self._pool.fetch(_MEMBERSHIPS, user_id, since, now))

    async def changed_memberships(self, user_id: str, since: int, now: int) -> list[Membership]:
        """As `memberships`, for only the rooms with an event in (since, now]:
        all an incremental sync reports (a membership change of the user's is
        an event of its room), found at the cost of what changed."""
        return self._memberships(await self._pool.fetch(_ACTIVE_MEMBERSHIPS, user_id, since, now))

    @staticmethod
    def _memberships(rows: list[asyncpg.Record]) -> list[Membership]:
        return [
            Membership(
                r["room_id"],
                r["event_id"],
                r["stream_ordering"],
                r["sender"],
                r["membership"],
                r["membership_at_since"],
                r["joined_in_range"],
                r["left_in_range"],
                bool(r["forgotten"]),
            )
            for r in rows
        ]

    async def timelines(
        self, ranges: Sequence[TimelineRange], query: TimelineQuery, ignored: Collection[str]
    ) -> dict[str, TimelineRows]:
        """The newest events of each range that match `query`, newest first,
        leaving out the non-state events of `ignored` senders."""
        rows = await self._pool.fetch(
            _TIMELINES,
            [r.room_id for r in ranges],
            [r.lo for r in ranges],
            [r.hi for r in ranges],
            [r.limit for r in ranges],
            [_like(t) for t in query.types] if query.types is not None else None,
            [_like(t) for t in query.not_types],
            list(query.senders) if query.senders is not None else None,
            list(query.not_senders),
            query.contains_url,
            list(ignored),
        )
        result: dict[str, TimelineRows] = {}
        for r in rows:
            found = result.get(r["room_id"])
            if found is None:
                found = result[r["room_id"]] = TimelineRows([], r["any_events"])
            if r["event_id"] is not None:
                found.rows.append((r["event_id"], r["stream_ordering"]))
        for found in result.values():
            found.rows.sort(key=lambda row: -row[1])
        return result

    async def state_groups_at(
        self, points: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        """{(room, position): the state group after the room's last event at or
        before that stream position}; rooms with no such event are left out."""
        points = list(set(points))
        rows = await self._pool.fetch(_GROUPS_AT, [p[0] for p in points], [p[1] for p in points])
        return {(r["room_id"], r["pos"]): r["state_group"] for r in rows}

    async def changed_state_keys(
        self, ranges: Sequence[tuple[str, int, int]]
    ) -> dict[str, set[StateKey]]:
        """{room: the state keys of its state events in (lo, hi]}."""
        rows = await self._pool.fetch(
            _CHANGED_KEYS,
            [r[0] for r in ranges],
            [r[1] for r in ranges],
            [r[2] for r in ranges],
        )
        changed: dict[str, set[StateKey]] = {}
        for r in rows:
            changed.setdefault(r["room_id"], set()).add((r["type"], r["state_key"]))
        return changed

    async def states_of_groups(
        self, groups: Iterable[int], members: Collection[str] | None = None
    ) -> dict[int, StateMap]:
        """{group: its full state map}; with `members`, the member entries of
        only those users (lazy loading of members)."""
        group_ids = list(set(groups))
        rows = await self._pool.fetch(
            _STATES, group_ids, list(members) if members is not None else None
        )
        result: dict[int, StateMap] = {g: {} for g in group_ids}
        for r in rows:
            if r["event_id"]:
                result[r["start"]][(r["type"], r["state_key"])] = r["event_id"]
        return result

    async def member_counts(self, room_ids: Iterable[str]) -> dict[str, MemberCounts]:
        """What a room summary is made of, from the rooms' current state."""
        rows = await self._pool.fetch(_COUNTS, list(set(room_ids)))
        return {
            r["room_id"]: MemberCounts(
                r["joined"],
                r["invited"],
                r["name_id"],
                r["alias_id"],
                [tuple(h) for h in json.loads(r["heroes"] or "[]")],
            )
            for r in rows
        }

    async def in_current_state(self, events: Iterable[tuple[str, str, str, str]]) -> set[str]:
        """Which of these (event id, room, type, state key) state events are
        their room's current state."""
        events = list(events)
        if not events:
            return set()
        rows = await self._pool.fetch(
            """SELECT c.event_id
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                    AS e(event_id, room_id, type, state_key)
               JOIN current_state c USING (room_id, type, state_key, event_id)""",
            [e[0] for e in events],
            [e[1] for e in events],
            [e[2] for e in events],
            [e[3] for e in events],
        )
        return {r["event_id"] for r in rows}
