"""Push rules as users changed them, and the notifications their rules produced."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import asyncpg
import attrs

# The thread key of notifications in the main timeline (thread roots are event
# ids, which never are empty).
MAIN_THREAD = ""


class RelativeRuleNotFoundError(Exception):
    """`before`/`after` named no rule of the user's of that kind."""


@attrs.frozen
class StoredPushRule:
    """A user's own rule (is_default False), or their change to a default one
    (is_default True; None fields keep the default's value)."""

    kind: str
    rule_id: str
    is_default: bool
    priority: int
    conditions_json: str | None
    pattern: str | None
    actions_json: str | None
    enabled: bool | None


@attrs.frozen
class NewNotification:
    user_id: str
    room_id: str
    stream_ordering: int
    event_id: str
    thread_id: str
    highlight: bool
    actions_json: str
    # False: a row saying the user is not notified, overriding the event's
    # common row (CommonNotification) for them.
    notify: bool = True


@attrs.frozen
class CommonNotification:
    """The outcome of an event for every local member without a row of their
    own for it (see schema/0540_push_common.sql)."""

    room_id: str
    stream_ordering: int
    event_id: str
    thread_id: str
    sender: str
    highlight: bool
    actions_json: str


@attrs.frozen
class RoomPushFacts:
    """What evaluating an event's push rules needs to know about its room."""

    joined_count: int
    # Local joined members: (user id, display name or None).
    local_members: tuple[tuple[str, str | None], ...]
    power_levels_event_id: str | None
    create_event_id: str | None
    # The stream position of the room's newest event when these were read.
    head_stream: int | None


@attrs.frozen
class ReadUpTo:
    """Where a user has read a room up to (event stream orderings; 0: nowhere)."""

    # By an unthreaded receipt: every thread of the room.
    unthreaded: int
    # The main timeline: the later of the unthreaded and its own receipt.
    main: int
    # Threads that have receipts of their own: thread root -> the later of
    # the unthreaded receipt and theirs.
    threads: Mapping[str, int]


@attrs.frozen
class UnreadCount:
    room_id: str
    thread_id: str
    notifications: int
    highlights: int


_USER_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('push_rules ' || $1, 0))"

_ROOM_FACTS = """
WITH local_members AS (
    SELECT state_key, event_id FROM current_state
    WHERE room_id = $1 AND type = 'm.room.member' AND membership = 'join'
      AND substr(state_key, strpos(state_key, ':') + 1) = $2
)
SELECT
    (SELECT count(*) FROM current_state
     WHERE room_id = $1 AND type = 'm.room.member' AND membership = 'join') AS joined,
    (SELECT event_id FROM current_state
     WHERE room_id = $1 AND type = 'm.room.power_levels' AND state_key = '') AS power_levels,
    (SELECT event_id FROM current_state
     WHERE room_id = $1 AND type = 'm.room.create' AND state_key = '') AS create_event,
    (SELECT head_stream FROM rooms WHERE room_id = $1) AS head_stream,
    ARRAY(SELECT state_key FROM local_members ORDER BY state_key) AS users,
    ARRAY(
        SELECT (SELECT e.json::json -> 'content' ->> 'displayname'
                FROM events e WHERE e.event_id = m.event_id)
        FROM local_members m ORDER BY m.state_key
    ) AS names
"""


# The main timeline and the threads are counted apart: the main timeline is
# counted from its read position; threads from the unthreaded receipt, less
# what their own receipts acknowledge. A room's notifications are the user's
# own rows that notify, and the room's common rows that the user did not send
# and has no own row for.
_UNREAD = """
WITH read AS (
    SELECT * FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS r(room_id, unthreaded, main)
), rooms AS (
    -- Nothing before the user's membership event counts (like Synapse: an
    -- invite is no unread message once they have joined).
    SELECT r.room_id, greatest(r.unthreaded, m.stream_ordering) AS unthreaded,
           greatest(r.main, m.stream_ordering) AS main,
           coalesce(cs.membership = 'join', FALSE) AS joined
    FROM read r
    LEFT JOIN current_state cs
      ON cs.room_id = r.room_id AND cs.type = 'm.room.member' AND cs.state_key = $1
    LEFT JOIN events m ON m.event_id = cs.event_id
), thread_reads AS (
    SELECT * FROM unnest($5::text[], $6::text[], $7::bigint[]) AS t(room_id, thread_id, upto)
), notified AS (
    -- The user's own rows: the main timeline and the threads as two index ranges.
    SELECT r.room_id, n.thread_id, n.stream_ordering, n.highlight
    FROM rooms r
    JOIN event_push_notifications n
      ON n.user_id = $1 AND n.room_id = r.room_id AND n.thread_id = ''
     AND n.stream_ordering > r.main AND n.stream_ordering <= $8
    WHERE n.notify
    UNION ALL
    SELECT r.room_id, n.thread_id, n.stream_ordering, n.highlight
    FROM rooms r
    JOIN event_push_notifications n
      ON n.user_id = $1 AND n.room_id = r.room_id AND n.thread_id > ''
     AND n.stream_ordering > r.unthreaded AND n.stream_ordering <= $8
    WHERE n.notify
    UNION ALL
    SELECT r.room_id, c.thread_id, c.stream_ordering, c.highlight
    FROM rooms r
    JOIN event_push_common c
      ON c.room_id = r.room_id
     AND c.stream_ordering > r.unthreaded AND c.stream_ordering <= $8
    -- Common rows are for members: a room left or only invited to has none.
    WHERE r.joined AND c.sender <> $1
      AND NOT EXISTS (
          SELECT 1 FROM event_push_notifications o
          WHERE o.user_id = $1 AND o.room_id = c.room_id AND o.thread_id = c.thread_id
            AND o.stream_ordering = c.stream_ordering)
)
SELECT n.room_id, n.thread_id, count(*) AS notifications,
       count(*) FILTER (WHERE n.highlight) AS highlights
FROM notified n
JOIN rooms r ON r.room_id = n.room_id
WHERE n.thread_id = '' AND n.stream_ordering > r.main
GROUP BY n.room_id, n.thread_id
UNION ALL
SELECT n.room_id, n.thread_id, count(*), count(*) FILTER (WHERE n.highlight)
FROM notified n
JOIN rooms r ON r.room_id = n.room_id
LEFT JOIN thread_reads t ON t.room_id = n.room_id AND t.thread_id = n.thread_id
WHERE n.thread_id > '' AND n.stream_ordering > r.unthreaded
  AND (t.upto IS NULL OR n.stream_ordering > t.upto)
GROUP BY n.room_id, n.thread_id
"""


class PushStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # --- push rules ------------------------------------------------------------

    async def rules_for_users(
        self, user_ids: Iterable[str], conn: asyncpg.Connection | None = None
    ) -> dict[str, list[StoredPushRule]]:
        """Every stored rule row of these users, by user (users without any: absent)."""
        rows = await (conn or self._pool).fetch(
            """SELECT user_id, kind, rule_id, is_default, priority, conditions, pattern,
                      actions, enabled
               FROM push_rules WHERE user_id = ANY($1::text[])""",
            list(user_ids),
        )
        found: dict[str, list[StoredPushRule]] = {}
        for r in rows:
            found.setdefault(r["user_id"], []).append(
                StoredPushRule(
                    r["kind"],
                    r["rule_id"],
                    r["is_default"],
                    r["priority"],
                    r["conditions"],
                    r["pattern"],
                    r["actions"],
                    r["enabled"],
                )
            )
        return found

    async def put_rule(
        self,
        user_id: str,
        kind: str,
        rule_id: str,
        *,
        conditions_json: str | None,
        pattern: str | None,
        actions_json: str,
        before: str | None,
        after: str | None,
    ) -> None:
        """Create or replace a user's rule, placed before/after another of the
        same kind, or (new, unplaced) above all of them; an existing rule given
        no place keeps its own. New rules are enabled; replaced ones keep their
        enabled flag."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_USER_LOCK, user_id)
            relative = before or after
            if relative is not None:
                base = await conn.fetchval(
                    """SELECT priority FROM push_rules
                       WHERE user_id = $1 AND kind = $2 AND rule_id = $3 AND NOT is_default""",
                    user_id,
                    kind,
                    relative,
                )
                if base is None:
                    raise RelativeRuleNotFoundError(relative)
                # Higher runs first: "before" takes the place just above.
                priority = base + 1 if before else base
                await conn.execute(
                    """UPDATE push_rules SET priority = priority + 1
                       WHERE user_id = $1 AND kind = $2 AND NOT is_default
                         AND priority >= $3""",
                    user_id,
                    kind,
                    priority,
                )
            else:
                priority = await conn.fetchval(
                    """SELECT coalesce(
                           (SELECT priority FROM push_rules
                            WHERE user_id = $1 AND kind = $2 AND rule_id = $3),
                           (SELECT max(priority) + 1 FROM push_rules
                            WHERE user_id = $1 AND kind = $2 AND NOT is_default),
                           0)""",
                    user_id,
                    kind,
                    rule_id,
                )
            await conn.execute(
                """INSERT INTO push_rules (user_id, kind, rule_id, is_default, priority,
                                          conditions, pattern, actions, enabled)
                   VALUES ($1, $2, $3, FALSE, $4, $5, $6, $7, TRUE)
                   ON CONFLICT (user_id, kind, rule_id) DO UPDATE
                   SET priority = EXCLUDED.priority, conditions = EXCLUDED.conditions,
                       pattern = EXCLUDED.pattern, actions = EXCLUDED.actions""",
                user_id,
                kind,
                rule_id,
                priority,
                conditions_json,
                pattern,
                actions_json,
            )

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> bool:
        """Delete a user's own rule; False if there is none."""
        status = await self._pool.execute(
            """DELETE FROM push_rules
               WHERE user_id = $1 AND kind = $2 AND rule_id = $3 AND NOT is_default""",
            user_id,
            kind,
            rule_id,
        )
        return status != "DELETE 0"

    async def set_attribute(
        self,
        user_id: str,
        kind: str,
        rule_id: str,
        *,
        is_default: bool,
        enabled: bool | None = None,
        actions_json: str | None = None,
    ) -> bool:
        """Set `enabled` or `actions` (whichever is given) of a rule.

        A user's own rule must exist (False if not); a default rule gets a row
        holding the change.
        """
        column = "enabled" if enabled is not None else "actions"
        value: Any = enabled if enabled is not None else actions_json
        if not is_default:
            status = await self._pool.execute(
                f"""UPDATE push_rules SET {column} = $4
                    WHERE user_id = $1 AND kind = $2 AND rule_id = $3 AND NOT is_default""",
                user_id,
                kind,
                rule_id,
                value,
            )
            return status != "UPDATE 0"
        await self._pool.execute(
            f"""INSERT INTO push_rules (user_id, kind, rule_id, is_default, {column})
                VALUES ($1, $2, $3, TRUE, $4)
                ON CONFLICT (user_id, kind, rule_id) DO UPDATE SET {column} = EXCLUDED.{column}""",
            user_id,
            kind,
            rule_id,
            value,
        )
        return True

    # --- notifications ---------------------------------------------------------

    async def room_push_facts(
        self, room_id: str, server_name: str, conn: asyncpg.Connection | None = None
    ) -> RoomPushFacts:
        """The room's joined count, its local joined members with their display
        names, its power levels and create event ids, and the position of its
        newest event (saying which event these are the state after): one query."""
        row = await (conn or self._pool).fetchrow(_ROOM_FACTS, room_id, server_name)
        return RoomPushFacts(
            row["joined"],
            tuple(zip(row["users"], row["names"], strict=True)),
            row["power_levels"],
            row["create_event"],
            row["head_stream"],
        )

    async def add_notifications(
        self, notifications: Sequence[NewNotification], conn: asyncpg.Connection | None = None
    ) -> None:
        """Insert the rows (of one or a few events) in one statement; what rows
        of one event share is sent once, which halves what PostgreSQL decodes."""
        events: dict[tuple[str, int, str, str], int] = {}
        index = []
        for n in notifications:
            key = (n.room_id, n.stream_ordering, n.event_id, n.thread_id)
            index.append(events.setdefault(key, len(events) + 1))
        await (conn or self._pool).execute(
            """INSERT INTO event_push_notifications
                   (user_id, room_id, stream_ordering, event_id, thread_id, highlight, actions,
                    notify)
               SELECT r.user_id, e.room_id, e.stream_ordering, e.event_id, e.thread_id,
                      r.highlight, r.actions, r.notify
               FROM unnest($1::text[], $2::bool[], $3::text[], $4::int[], $9::bool[])
                    AS r(user_id, highlight, actions, i, notify)
               JOIN unnest($5::text[], $6::bigint[], $7::text[], $8::text[]) WITH ORDINALITY
                    AS e(room_id, stream_ordering, event_id, thread_id, i) USING (i)""",
            [n.user_id for n in notifications],
            [n.highlight for n in notifications],
            [n.actions_json for n in notifications],
            index,
            [k[0] for k in events],
            [k[1] for k in events],
            [k[2] for k in events],
            [k[3] for k in events],
            [n.notify for n in notifications],
        )

    async def add_common(
        self, common: CommonNotification, conn: asyncpg.Connection | None = None
    ) -> None:
        """Write an event's common notification row."""
        await (conn or self._pool).execute(
            """INSERT INTO event_push_common
                   (room_id, stream_ordering, event_id, thread_id, sender, highlight, actions)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            common.room_id,
            common.stream_ordering,
            common.event_id,
            common.thread_id,
            common.sender,
            common.highlight,
            common.actions_json,
        )

    async def with_own_outcome(
        self, user_ids: Collection[str], conn: asyncpg.Connection | None = None
    ) -> tuple[set[str], set[str]]:
        """(those of these users with push rules of their own (any stored rule
        row), those with a pusher): their notifications are evaluated and
        written per user. One query."""
        if not user_ids:
            return set(), set()
        rows = await (conn or self._pool).fetch(
            """SELECT user_id, FALSE AS pusher FROM push_rules WHERE user_id = ANY($1::text[])
               UNION
               SELECT user_id, TRUE FROM pushers WHERE user_id = ANY($1::text[])""",
            list(user_ids),
        )
        ruled = {r["user_id"] for r in rows if not r["pusher"]}
        return ruled, {r["user_id"] for r in rows if r["pusher"]}

    async def membership_changed(
        self,
        room_id: str,
        joined: Sequence[str],
        left: Sequence[str],
        stream_ordering: int,
        conn: asyncpg.Connection,
    ) -> None:
        """Open the spans of membership of the users who are now joined (a span
        already open stays as it is) and close those of the users who are not
        any more: GET /notifications lists a room's common rows inside the
        user's spans."""
        if joined:
            await conn.execute(
                """INSERT INTO push_member_spans (user_id, room_id, joined_at)
                   SELECT u, $2, $3 FROM unnest($1::text[]) AS u
                   ON CONFLICT DO NOTHING""",
                list(joined),
                room_id,
                stream_ordering,
            )
        if left:
            await conn.execute(
                """UPDATE push_member_spans SET left_at = $3
                   WHERE user_id = ANY($1::text[]) AND room_id = $2 AND left_at IS NULL""",
                list(left),
                room_id,
                stream_ordering,
            )

    async def unread_counts(
        self, user_id: str, read: Mapping[str, ReadUpTo], upto: int
    ) -> list[UnreadCount]:
        """Notification and highlight counts per room and thread (only those
        above zero) after where the user has read each room up to and after
        their membership event, counting events up to stream position `upto`."""
        if not read:
            return []
        thread_reads = [(r, t, p) for r, at in read.items() for t, p in at.threads.items()]
        rows = await self._pool.fetch(
            _UNREAD,
            user_id,
            list(read),
            [at.unthreaded for at in read.values()],
            [at.main for at in read.values()],
            [r for r, _, _ in thread_reads],
            [t for _, t, _ in thread_reads],
            [p for _, _, p in thread_reads],
            upto,
        )
        return [
            UnreadCount(r["room_id"], r["thread_id"], r["notifications"], r["highlights"])
            for r in rows
        ]
