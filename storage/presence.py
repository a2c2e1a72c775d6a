"""Presence: one row per user, on its own stream, and who shares a room with whom."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import attrs


@attrs.frozen
class PresenceRow:
    user_id: str
    state: str
    status_msg: str | None
    last_active_ts: int
    currently_active: bool


_COLUMNS = "user_id, state, status_msg, last_active_ts, currently_active"


class PresenceStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, user_ids: Sequence[str]) -> dict[str, PresenceRow]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM presence WHERE user_id = ANY($1)", list(user_ids)
        )
        return {r["user_id"]: PresenceRow(**dict(r)) for r in rows}

    async def not_offline(self) -> list[PresenceRow]:
        """Users whose stored presence is not offline: at start-up, someone
        has to time them out."""
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM presence WHERE state <> 'offline'")
        return [PresenceRow(**dict(r)) for r in rows]

    async def put(self, rows: Sequence[tuple[PresenceRow, int]]) -> None:
        """Store each row with its stream position, in one statement.

        A row never replaces one written with a later position, so two
        updates of one user that commit out of order keep the later state.
        """
        await self._pool.execute(
            """INSERT INTO presence (user_id, state, status_msg, last_active_ts,
                                     currently_active, stream_id)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                                    $5::boolean[], $6::bigint[])
               ON CONFLICT (user_id) DO UPDATE
               SET state = EXCLUDED.state, status_msg = EXCLUDED.status_msg,
                   last_active_ts = EXCLUDED.last_active_ts,
                   currently_active = EXCLUDED.currently_active,
                   stream_id = EXCLUDED.stream_id
               WHERE presence.stream_id < EXCLUDED.stream_id""",
            [r.user_id for r, _ in rows],
            [r.state for r, _ in rows],
            [r.status_msg for r, _ in rows],
            [r.last_active_ts for r, _ in rows],
            [r.currently_active for r, _ in rows],
            [position for _, position in rows],
        )

    async def put_unless_changed(self, rows: Sequence[tuple[PresenceRow, int, int]]) -> set[str]:
        """Store each (row, position) over the stored row only if that one
        still has the position read before (the third item), in one
        statement: a decision made on what was read never overwrites a
        change made meanwhile. Returns the users written."""
        written = await self._pool.fetch(
            """UPDATE presence p
               SET state = n.state, status_msg = n.status_msg,
                   last_active_ts = n.last_active_ts,
                   currently_active = n.currently_active, stream_id = n.stream_id
               FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::boolean[],
                           $6::bigint[], $7::bigint[])
                    AS n(user_id, state, status_msg, last_active_ts, currently_active,
                         stream_id, expected)
               WHERE p.user_id = n.user_id AND p.stream_id = n.expected
               RETURNING p.user_id""",
            [r.user_id for r, _, _ in rows],
            [r.state for r, _, _ in rows],
            [r.status_msg for r, _, _ in rows],
            [r.last_active_ts for r, _, _ in rows],
            [r.currently_active for r, _, _ in rows],
            [position for _, position, _ in rows],
            [expected for _, _, expected in rows],
        )
        return {r["user_id"] for r in written}

    async def changed_for(self, viewer: str, after: int, upto: int) -> list[PresenceRow]:
        """Presence set in (after, upto] of the viewer and of the users who
        share a joined room with them: the few changed rows, each checked."""
        rows = await self._pool.fetch(
            f"""SELECT {_COLUMNS} FROM presence p
                WHERE p.stream_id > $2 AND p.stream_id <= $3 AND (
                    p.user_id = $1 OR EXISTS (
                        SELECT 1 FROM current_state mine
                        JOIN current_state theirs ON theirs.room_id = mine.room_id
                        WHERE mine.type = 'm.room.member' AND mine.state_key = $1
                          AND mine.membership = 'join'
                          AND theirs.type = 'm.room.member' AND theirs.state_key = p.user_id
                          AND theirs.membership = 'join'))
                ORDER BY p.stream_id""",
            viewer,
            after,
            upto,
        )
        return [PresenceRow(**dict(r)) for r in rows]

    async def newly_shared(
        self, viewer: str, after: int, upto: int, presence_upto: int
    ) -> list[PresenceRow]:
        """The presence (up to `presence_upto`) of the users who came to share
        a joined room with the viewer through joins at event stream positions
        in (after, upto]: every member of a room the viewer joined, and each
        user who joined a room the viewer is in. The viewer is left out;
        users with no presence yet are offline."""
        rows = await self._pool.fetch(
            """WITH joins AS (
                    SELECT e.room_id, e.state_key FROM events e
                    JOIN current_state mine ON mine.room_id = e.room_id
                     AND mine.type = 'm.room.member' AND mine.state_key = $1
                     AND mine.membership = 'join'
                    WHERE e.type = 'm.room.member'
                      AND e.stream_ordering > $2 AND e.stream_ordering <= $3
                      AND NOT e.outlier AND e.rejected_reason IS NULL
                      AND e.json::jsonb -> 'content' ->> 'membership' = 'join'
                ), peers AS (
                    SELECT state_key AS user_id FROM joins WHERE state_key <> $1
                    UNION
                    SELECT theirs.state_key FROM joins j
                    JOIN current_state theirs ON theirs.room_id = j.room_id
                     AND theirs.type = 'm.room.member' AND theirs.membership = 'join'
                    WHERE j.state_key = $1 AND theirs.state_key <> $1)
                SELECT u.user_id, coalesce(p.state, 'offline') AS state, p.status_msg,
                       coalesce(p.last_active_ts, 0) AS last_active_ts,
                       coalesce(p.currently_active, FALSE) AS currently_active
                FROM peers u
                LEFT JOIN presence p ON p.user_id = u.user_id AND p.stream_id <= $4
                ORDER BY p.stream_id NULLS FIRST, u.user_id""",
            viewer,
            after,
            upto,
            presence_upto,
        )
        return [PresenceRow(**dict(r)) for r in rows]

    async def current_for(self, viewer: str, upto: int) -> list[PresenceRow]:
        """The presence (up to `upto`, offline left out) of the viewer and of
        the users who share a joined room with them: those users first."""
        rows = await self._pool.fetch(
            f"""WITH peers AS (
                    SELECT theirs.state_key AS user_id FROM current_state mine
                    JOIN current_state theirs ON theirs.room_id = mine.room_id
                    WHERE mine.type = 'm.room.member' AND mine.state_key = $1
                      AND mine.membership = 'join'
                      AND theirs.type = 'm.room.member' AND theirs.membership = 'join'
                    UNION SELECT $1)
                SELECT {_COLUMNS} FROM presence p JOIN peers USING (user_id)
                WHERE p.stream_id <= $2 AND p.state <> 'offline'
                ORDER BY p.stream_id""",
            viewer,
            upto,
        )
        return [PresenceRow(**dict(r)) for r in rows]

    async def changed_in_rooms(
        self, room_ids: Sequence[str], after: int, upto: int
    ) -> list[PresenceRow]:
        """Presence set in (after, upto] of the users joined to these rooms
        (what a reader of a room they have not joined sees)."""
        rows = await self._pool.fetch(
            f"""SELECT {_COLUMNS} FROM presence p
                WHERE p.stream_id > $2 AND p.stream_id <= $3 AND EXISTS (
                    SELECT 1 FROM current_state m
                    WHERE m.room_id = ANY($1) AND m.type = 'm.room.member'
                      AND m.state_key = p.user_id AND m.membership = 'join')
                ORDER BY p.stream_id""",
            list(room_ids),
            after,
            upto,
        )
        return [PresenceRow(**dict(r)) for r in rows]

    async def current_in_rooms(self, room_ids: Sequence[str], upto: int) -> list[PresenceRow]:
        """The presence (up to `upto`) of every user joined to these rooms,
        offline ones included (as offline if they never had any): what a
        room initialSync shows of its members."""
        rows = await self._pool.fetch(
            """SELECT DISTINCT ON (m.state_key) m.state_key AS user_id,
                      coalesce(p.state, 'offline') AS state, p.status_msg,
                      coalesce(p.last_active_ts, 0) AS last_active_ts,
                      coalesce(p.currently_active, false) AS currently_active
               FROM current_state m
               LEFT JOIN presence p ON p.user_id = m.state_key AND p.stream_id <= $2
               WHERE m.room_id = ANY($1) AND m.type = 'm.room.member'
                 AND m.membership = 'join'
               ORDER BY m.state_key""",
            list(room_ids),
            upto,
        )
        return [PresenceRow(**dict(r)) for r in rows]

    async def shares_room(self, user_id: str, other: str) -> bool:
        return bool(
            await self._pool.fetchval(
                """SELECT 1 FROM current_state a
                   JOIN current_state b ON b.room_id = a.room_id
                   WHERE a.type = 'm.room.member' AND a.state_key = $1
                     AND a.membership = 'join'
                     AND b.type = 'm.room.member' AND b.state_key = $2
                     AND b.membership = 'join'
                   LIMIT 1""",
                user_id,
                other,
            )
        )

    async def joined_rooms(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """{user: rooms they are joined to}, for many users in one query."""
        rows = await self._pool.fetch(
            """SELECT state_key, room_id FROM current_state
               WHERE type = 'm.room.member' AND state_key = ANY($1) AND membership = 'join'""",
            list(user_ids),
        )
        rooms: dict[str, list[str]] = {u: [] for u in user_ids}
        for r in rows:
            rooms[r["state_key"]].append(r["room_id"])
        return rooms


def presence_row(record: asyncpg.Record) -> PresenceRow:
    """The presence columns of a row read with others beside them."""
    return PresenceRow(
        record["user_id"],
        record["state"],
        record["status_msg"],
        record["last_active_ts"],
        record["currently_active"],
    )
