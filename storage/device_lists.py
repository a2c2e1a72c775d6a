"""The device list stream: which users' devices changed, and who needs to know.

"Sharing a room" means both users are joined to it now (current state).
"""

from __future__ import annotations

import asyncpg
import attrs

# Whether the user $1 shares a joined room with the user in `{who}`.
_SHARES = """EXISTS (
    SELECT 1 FROM current_state a
    JOIN current_state b ON b.room_id = a.room_id
    WHERE a.type = 'm.room.member' AND a.state_key = $1 AND a.membership = 'join'
      AND b.type = 'm.room.member' AND b.state_key = {who} AND b.membership = 'join'
)"""

# Record the change and name who shares a room with the user, in one statement.
_RECORD = """
WITH recorded AS (
    INSERT INTO device_list_changes (stream_id, user_id) VALUES ($2, $1)
)
SELECT DISTINCT b.state_key AS user_id
FROM current_state a
JOIN current_state b ON b.room_id = a.room_id
WHERE a.type = 'm.room.member' AND a.state_key = $1 AND a.membership = 'join'
  AND b.type = 'm.room.member' AND b.membership = 'join'
"""

# A change that only the user $3 is told of.
_RECORD_PRIVATE = """
INSERT INTO device_list_changes (stream_id, user_id, only_for) VALUES ($2, $1, $3)
"""

# $1 the syncing user, ($2, $3] the device list range, ($4, $5] the event range.
# `moves`: joins and departures (not profile changes, nor rejected invites) in
# the range, in rooms the user has any membership in.
# Changed: users sharing a room whose devices changed (the user too), and
# users the user newly shares a room with (either of them joined). Left:
# users who left a room of the user's, or were in a room the user left, and
# share no room with the user any more.
_CHANGES = f"""
WITH all_moves AS (
    SELECT e.room_id, e.state_key AS user_id,
           e.json::jsonb -> 'content' ->> 'membership' AS membership,
           p.json::jsonb -> 'content' ->> 'membership' AS before
    FROM events e
    LEFT JOIN events p ON p.event_id = e.replaces_state
    WHERE e.type = 'm.room.member' AND e.stream_ordering > $4 AND e.stream_ordering <= $5
      AND NOT e.outlier AND e.rejected_reason IS NULL
      AND e.room_id IN (SELECT room_id FROM current_state
                        WHERE type = 'm.room.member' AND state_key = $1)
),
moves AS (
    SELECT room_id, user_id, membership FROM all_moves
    WHERE (membership = 'join' AND before IS DISTINCT FROM 'join')
       OR (membership IN ('leave', 'ban') AND before = 'join')
),
members_of_my_moves AS (
    SELECT DISTINCT m.membership, c.state_key AS user_id
    FROM moves m
    JOIN current_state c ON c.room_id = m.room_id
    WHERE m.user_id = $1 AND c.type = 'm.room.member' AND c.membership = 'join'
),
changed AS (
    SELECT user_id FROM device_list_changes
    WHERE stream_id > $2 AND stream_id <= $3 AND (only_for IS NULL OR only_for = $1)
    UNION
    SELECT user_id FROM moves WHERE membership = 'join' AND user_id <> $1
    UNION
    SELECT user_id FROM members_of_my_moves WHERE membership = 'join' AND user_id <> $1
),
gone AS (
    SELECT user_id FROM moves WHERE membership IN ('leave', 'ban') AND user_id <> $1
    UNION
    SELECT user_id FROM members_of_my_moves
    WHERE membership IN ('leave', 'ban') AND user_id <> $1
)
SELECT user_id, TRUE AS changed FROM changed
WHERE user_id = $1 OR {_SHARES.format(who="changed.user_id")}
UNION ALL
SELECT user_id, FALSE FROM gone
WHERE NOT {_SHARES.format(who="gone.user_id")}
"""


@attrs.frozen
class DeviceListChanges:
    changed: list[str]
    left: list[str]


class DeviceListStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, user_id: str, stream_id: int) -> list[str]:
        """Record that the user's devices changed at `stream_id`; return the
        users who share a room with them (the user among them if in any room)."""
        rows = await self._pool.fetch(_RECORD, user_id, stream_id)
        return [r["user_id"] for r in rows]

    async def record_private(self, user_id: str, stream_id: int, only_for: str) -> None:
        """Record a change of the user's keys that only `only_for` is told of."""
        await self._pool.execute(_RECORD_PRIVATE, user_id, stream_id, only_for)

    async def changes(
        self,
        user_id: str,
        devices_after: int,
        devices_upto: int,
        events_after: int,
        events_upto: int,
    ) -> DeviceListChanges:
        """The users whose device lists the user's client must refetch, and
        those it may stop tracking, over both ranges. One query."""
        rows = await self._pool.fetch(
            _CHANGES, user_id, devices_after, devices_upto, events_after, events_upto
        )
        return DeviceListChanges(
            changed=sorted(r["user_id"] for r in rows if r["changed"]),
            left=sorted(r["user_id"] for r in rows if not r["changed"]),
        )
