"""The pushers' sender's reads of the notification rows, and its position.

Every local user with a pusher gets a row of their own for each event that
notifies them (homeserver/push/notifications.py singles them out, so none is
folded into the event's common row): reading those rows in stream order is
reading every push to send. The position says how far they were pushed.
"""

from __future__ import annotations

import asyncpg

from storage.push import NewNotification

# The rows of the first `$3` events in (after, upto] notifying a user with a
# pusher: whole events, so that a batch never ends inside one. The events
# are found by a walk of the stream index that stops at the `$3`th, so a
# long range (after an outage of the pushers) costs a batch, not the range.
_PUSHABLE = """
WITH batch AS (
    SELECT DISTINCT n.stream_ordering FROM event_push_notifications n
    WHERE n.notify AND n.stream_ordering > $1 AND n.stream_ordering <= $2
      AND EXISTS (SELECT 1 FROM pushers p WHERE p.user_id = n.user_id)
    ORDER BY n.stream_ordering LIMIT $3
)
SELECT n.user_id, n.room_id, n.stream_ordering, n.event_id, n.thread_id, n.highlight, n.actions
FROM batch JOIN event_push_notifications n USING (stream_ordering)
WHERE n.notify AND EXISTS (SELECT 1 FROM pushers p WHERE p.user_id = n.user_id)
ORDER BY n.stream_ordering, n.user_id
"""


class PushStreamStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def start_at(self, current: int) -> int:
        """The stored position; the first time, `current` is stored and returned."""
        return await self._pool.fetchval(
            """WITH added AS (
                   INSERT INTO pusher_stream_position (stream_ordering) VALUES ($1)
                   ON CONFLICT DO NOTHING RETURNING stream_ordering
               )
               SELECT stream_ordering FROM added
               UNION ALL SELECT stream_ordering FROM pusher_stream_position""",
            current,
        )

    async def save(self, position: int) -> None:
        """Everything up to `position` was pushed (never moves back)."""
        await self._pool.execute(
            """UPDATE pusher_stream_position
               SET stream_ordering = greatest(stream_ordering, $1)""",
            position,
        )

    async def pushable(self, after: int, upto: int, events: int) -> list[NewNotification]:
        """The notifying rows of users with a pusher in (after, upto], of the
        first `events` events there, in stream order: one query."""
        rows = await self._pool.fetch(_PUSHABLE, after, upto, events)
        return [
            NewNotification(
                r["user_id"],
                r["room_id"],
                r["stream_ordering"],
                r["event_id"],
                r["thread_id"],
                r["highlight"],
                r["actions"],
            )
            for r in rows
        ]
