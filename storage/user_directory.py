"""The user directory's queries: one indexed search, and the public rooms' members it needs.

A search is one statement. The GIN index on `profiles.directory_vector`
finds the profiles whose words match (at most `MAX_MATCHES`); each match is
kept only if the searcher may see it: it shares a joined room with the
searcher (the members of the searcher's rooms, read through the
current_state primary key), or it is joined to a public room (one probe into
`user_directory_public_members`), or the server lets everyone find every
local user. The survivors are ranked and cut to the requested count.
"""

from __future__ import annotations

import asyncpg
import attrs

# Matches considered before visibility and ranking: keeps a one-letter search
# on a large server bounded (Synapse uses the same cap).
MAX_MATCHES = 10000

_SEARCH = f"""
WITH mine AS MATERIALIZED (
    SELECT room_id FROM current_state
    WHERE type = 'm.room.member' AND state_key = $1 AND membership = 'join'
),
matches AS MATERIALIZED (
    SELECT p.user_id, p.displayname, p.avatar_url, p.directory_vector AS vector,
           split_part(substr(p.user_id, 2), ':', 1) AS localpart
    FROM profiles p JOIN users u ON u.user_id = p.user_id
    WHERE p.directory_vector @@ to_tsquery('simple', $2)
      AND NOT u.deactivated AND NOT u.locked
      AND u.user_type IS DISTINCT FROM 'support'
    LIMIT {MAX_MATCHES}
),
visible AS MATERIALIZED (
    SELECT m.*, m.user_id <> $1 AND m.user_id IN (
        SELECT c.state_key FROM mine JOIN current_state c ON c.room_id = mine.room_id
        WHERE c.type = 'm.room.member' AND c.membership = 'join'
    ) AS shares
    FROM matches m
)
SELECT user_id, displayname, avatar_url
FROM visible v
WHERE CASE WHEN $5 THEN v.user_id <> $1
      ELSE v.shares
          OR EXISTS (SELECT 1 FROM user_directory_public_members p WHERE p.user_id = v.user_id)
      END
ORDER BY
    -- The whole term is the display name or the user id; then it starts one.
    (lower(v.displayname) = $3 OR v.localpart = $3 OR substr(v.user_id, 2) = $3) IS TRUE DESC,
    (starts_with(lower(v.displayname), $3) OR starts_with(substr(v.user_id, 2), $3)) IS TRUE
        DESC,
    -- Then Synapse's weighting: whole words above prefixes, localpart above
    -- display name above server name; people one shares a room with first.
    (CASE WHEN v.shares THEN 2.0 ELSE 1.0 END)
    * (CASE WHEN v.displayname IS NOT NULL THEN 1.2 ELSE 1.0 END)
    * (CASE WHEN v.avatar_url IS NOT NULL THEN 1.2 ELSE 1.0 END)
    * (3 * ts_rank_cd('{{0.1, 0.1, 0.9, 1.0}}', v.vector, to_tsquery('simple', $4), 8)
       + ts_rank_cd('{{0.1, 0.1, 0.9, 1.0}}', v.vector, to_tsquery('simple', $2), 8)) DESC,
    v.displayname IS NULL, v.avatar_url IS NULL, v.user_id
LIMIT $6
"""

# Recomputations of public members take the room's lock, so that of two
# running together, the later one (which sees the later state) writes last.
_LOCK_ROOM = "SELECT pg_advisory_xact_lock(hashtextextended('user_directory ' || $1, 0))"
# Does the room's current state let everyone find its members?
_IS_PUBLIC = """
SELECT EXISTS (
    SELECT 1 FROM current_state c JOIN events e ON e.event_id = c.event_id
    WHERE c.room_id = $1 AND c.state_key = ''
      AND ((c.type = 'm.room.join_rules'
            AND e.json::jsonb -> 'content' ->> 'join_rule' = 'public')
        OR (c.type = 'm.room.history_visibility'
            AND e.json::jsonb -> 'content' ->> 'history_visibility' = 'world_readable')))
"""


@attrs.frozen
class DirectoryQuery:
    """A search term turned into what the SQL needs."""

    # tsquery text: every word as a prefix ('ali':* & 'smi':*).
    prefix: str
    # tsquery text: every word whole, to rank exact words above prefixes.
    exact: str
    # The whole term, lower-cased and without a leading '@', for exact and
    # prefix matches of a display name or user id.
    term: str


@attrs.frozen
class DirectoryEntry:
    user_id: str
    display_name: str | None
    avatar_url: str | None


class UserDirectoryStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def search(
        self, searcher: str, query: DirectoryQuery, limit: int, *, search_all_users: bool
    ) -> list[DirectoryEntry]:
        """The best `limit` entries the searcher may see, best first."""
        rows = await self._pool.fetch(
            _SEARCH,
            searcher,
            query.prefix,
            query.term,
            query.exact,
            search_all_users,
            limit,
        )
        return [DirectoryEntry(r["user_id"], r["displayname"], r["avatar_url"]) for r in rows]

    async def refresh_member(self, room_id: str, user_id: str) -> None:
        """Record from current state whether the user is joined to the room and it is public."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK_ROOM, room_id)
            await conn.execute(
                "DELETE FROM user_directory_public_members WHERE room_id = $1 AND user_id = $2",
                room_id,
                user_id,
            )
            await conn.execute(
                f"""INSERT INTO user_directory_public_members (user_id, room_id)
                    SELECT state_key, room_id FROM current_state
                    WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2
                      AND membership = 'join' AND ({_IS_PUBLIC})""",
                room_id,
                user_id,
            )

    async def refresh_room(self, room_id: str) -> None:
        """Record from current state which members of the room everyone may find."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK_ROOM, room_id)
            await conn.execute(
                "DELETE FROM user_directory_public_members WHERE room_id = $1", room_id
            )
            await conn.execute(
                f"""INSERT INTO user_directory_public_members (user_id, room_id)
                    SELECT state_key, room_id FROM current_state
                    WHERE room_id = $1 AND type = 'm.room.member' AND membership = 'join'
                      AND ({_IS_PUBLIC})""",
                room_id,
            )
