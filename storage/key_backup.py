"""Server-side key backup: versions (an algorithm and its auth_data) and the
backed-up room keys of each version."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import attrs


@attrs.frozen
class BackupVersion:
    version: int
    algorithm: str
    auth_data_json: str
    etag: int
    count: int


@attrs.frozen
class RoomKey:
    room_id: str
    session_id: str
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data_json: str


@attrs.frozen
class KeysChanged:
    """The version's etag and key count after a write."""

    etag: int
    count: int


class NoBackupError(Exception):
    """The version does not exist (or was deleted)."""


class WrongVersionError(Exception):
    """Keys may only be added to the newest version."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the current version is {current}")
        self.current = current


_VERSION = """
SELECT v.version, v.algorithm, v.auth_data, v.etag,
       (SELECT count(*)::int FROM e2e_room_keys k
        WHERE k.user_id = v.user_id AND k.version = v.version) AS count
FROM e2e_room_key_versions v
WHERE v.user_id = $1 AND NOT v.deleted AND ($2::bigint IS NULL OR v.version = $2)
ORDER BY v.version DESC
LIMIT 1
"""

# A stored key is replaced by a better one only: verified beats unverified,
# then a lower first message index, then fewer forwards.
_PUT_KEYS = """
INSERT INTO e2e_room_keys AS old (user_id, version, room_id, session_id, first_message_index,
                                  forwarded_count, is_verified, session_data)
SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::bigint[], $6::bigint[],
                             $7::boolean[], $8::text[])
ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE
SET first_message_index = excluded.first_message_index,
    forwarded_count = excluded.forwarded_count,
    is_verified = excluded.is_verified,
    session_data = excluded.session_data
WHERE (excluded.is_verified AND NOT old.is_verified)
   OR (excluded.is_verified = old.is_verified
       AND (excluded.first_message_index < old.first_message_index
            OR (excluded.first_message_index = old.first_message_index
                AND excluded.forwarded_count < old.forwarded_count)))
RETURNING 1
"""

# The version's etag moves when anything changed; returns the etag and count.
_BUMP = """
UPDATE e2e_room_key_versions v SET etag = etag + $3::int
WHERE user_id = $1 AND version = $2
RETURNING etag, (SELECT count(*)::int FROM e2e_room_keys k
                 WHERE k.user_id = $1 AND k.version = $2) AS count
"""


class KeyBackupStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_version(self, user_id: str, algorithm: str, auth_data_json: str) -> int:
        """A new version, numbered after every version the user ever had."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 1401))", user_id)
            version: int = await conn.fetchval(
                """INSERT INTO e2e_room_key_versions (user_id, version, algorithm, auth_data)
                   SELECT $1, coalesce(max(version), 0) + 1, $2, $3
                   FROM e2e_room_key_versions WHERE user_id = $1
                   RETURNING version""",
                user_id,
                algorithm,
                auth_data_json,
            )
        return version

    async def get_version(self, user_id: str, version: int | None) -> BackupVersion | None:
        """The version, or the newest one when None; None when there is none."""
        row = await self._pool.fetchrow(_VERSION, user_id, version)
        return BackupVersion(*row.values()) if row is not None else None

    async def update_version(self, user_id: str, version: int, auth_data_json: str) -> None:
        await self._pool.execute(
            """UPDATE e2e_room_key_versions SET auth_data = $3
               WHERE user_id = $1 AND version = $2 AND NOT deleted""",
            user_id,
            version,
            auth_data_json,
        )

    async def delete_version(self, user_id: str, version: int) -> bool:
        """Mark the version deleted and drop its keys; False if there was none."""
        async with self._pool.acquire() as conn, conn.transaction():
            found = await conn.fetchval(
                """UPDATE e2e_room_key_versions SET deleted = TRUE
                   WHERE user_id = $1 AND version = $2 AND NOT deleted RETURNING 1""",
                user_id,
                version,
            )
            if found is None:
                return False
            await conn.execute(
                "DELETE FROM e2e_room_keys WHERE user_id = $1 AND version = $2", user_id, version
            )
        return True

    async def put_keys(self, user_id: str, version: int, keys: Sequence[RoomKey]) -> KeysChanged:
        """Store keys in the newest version, keeping better stored ones.

        Raises NoBackupError when the user has no backup, WrongVersionError
        when `version` is not the newest. The newest version's row is locked
        for the transaction, so a concurrent new version waits for it.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            current = await conn.fetchval(
                """SELECT version FROM e2e_room_key_versions
                   WHERE user_id = $1 AND NOT deleted
                   ORDER BY version DESC LIMIT 1 FOR UPDATE""",
                user_id,
            )
            if current is None:
                raise NoBackupError
            if current != version:
                raise WrongVersionError(current)
            changed = await conn.fetch(
                _PUT_KEYS,
                user_id,
                version,
                [k.room_id for k in keys],
                [k.session_id for k in keys],
                [k.first_message_index for k in keys],
                [k.forwarded_count for k in keys],
                [k.is_verified for k in keys],
                [k.session_data_json for k in keys],
            )
            row = await conn.fetchrow(_BUMP, user_id, version, 1 if changed else 0)
        return KeysChanged(row["etag"], row["count"])

    async def get_keys(
        self, user_id: str, version: int, room_id: str | None, session_id: str | None
    ) -> list[RoomKey]:
        """The version's keys, of one room or one session if given."""
        rows = await self._pool.fetch(
            """SELECT room_id, session_id, first_message_index, forwarded_count,
                      is_verified, session_data
               FROM e2e_room_keys
               WHERE user_id = $1 AND version = $2
                 AND ($3::text IS NULL OR room_id = $3)
                 AND ($4::text IS NULL OR session_id = $4)""",
            user_id,
            version,
            room_id,
            session_id,
        )
        return [RoomKey(*r.values()) for r in rows]

    async def delete_keys(
        self, user_id: str, version: int, room_id: str | None, session_id: str | None
    ) -> KeysChanged:
        """Delete the version's keys (of one room or session if given);
        raises NoBackupError when the version does not exist."""
        async with self._pool.acquire() as conn, conn.transaction():
            exists = await conn.fetchval(
                """SELECT 1 FROM e2e_room_key_versions
                   WHERE user_id = $1 AND version = $2 AND NOT deleted FOR UPDATE""",
                user_id,
                version,
            )
            if exists is None:
                raise NoBackupError
            deleted = await conn.fetch(
                """DELETE FROM e2e_room_keys
                   WHERE user_id = $1 AND version = $2
                     AND ($3::text IS NULL OR room_id = $3)
                     AND ($4::text IS NULL OR session_id = $4)
                   RETURNING 1""",
                user_id,
                version,
                room_id,
                session_id,
            )
            row = await conn.fetchrow(_BUMP, user_id, version, 1 if deleted else 0)
        return KeysChanged(row["etag"], row["count"])
