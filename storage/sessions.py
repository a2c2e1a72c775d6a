"""Devices and the access and refresh tokens that belong to them.

Tokens are stored as SHA-256 digests only. Every token belongs to a device and
is deleted with it (foreign keys cascade), so deleting a device or logging out
can never leave a working token behind.
"""

from __future__ import annotations

import asyncpg
import attrs

from storage.database import now_ms


@attrs.frozen
class DeviceRecord:
    user_id: str
    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None


@attrs.frozen
class AccessTokenRecord:
    token_id: int
    user_id: str
    device_id: str
    valid_until_ts: int | None
    refresh_token_id: int | None
    used: bool
    is_guest: bool
    deactivated: bool
    locked: bool
    suspended: bool


@attrs.frozen
class NewTokens:
    """Digests to store; the plain tokens never reach this layer."""

    access_hash: bytes
    valid_until_ts: int | None
    refresh_hash: bytes | None


@attrs.frozen
class RefreshTokenRecord:
    token_id: int
    user_id: str
    device_id: str


class SessionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _insert_tokens(
        self, conn: asyncpg.Connection, user_id: str, device_id: str, tokens: NewTokens
    ) -> int | None:
        refresh_id = None
        if tokens.refresh_hash is not None:
            refresh_id = await conn.fetchval(
                """INSERT INTO refresh_tokens (token_hash, user_id, device_id)
                   VALUES ($1, $2, $3) RETURNING id""",
                tokens.refresh_hash,
                user_id,
                device_id,
            )
        await conn.execute(
            """INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts,
                                          valid_until_ts, refresh_token_id)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            tokens.access_hash,
            user_id,
            device_id,
            now_ms(),
            tokens.valid_until_ts,
            refresh_id,
        )
        return refresh_id

    async def login_device(
        self,
        user_id: str,
        device_id: str,
        display_name: str | None,
        tokens: NewTokens,
        ip: str | None,
    ) -> bool:
        """Create the device (or reuse it, revoking its old tokens) and its new
        tokens; True if the device is new."""
        async with self._pool.acquire() as conn, conn.transaction():
            existed = await conn.fetchval(
                "SELECT 1 FROM devices WHERE user_id = $1 AND device_id = $2 FOR UPDATE",
                user_id,
                device_id,
            )
            if existed:
                await conn.execute(
                    "DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2",
                    user_id,
                    device_id,
                )
                await conn.execute(
                    "DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id = $2",
                    user_id,
                    device_id,
                )
                if display_name is not None:
                    await conn.execute(
                        """UPDATE devices SET display_name = $3
                           WHERE user_id = $1 AND device_id = $2""",
                        user_id,
                        device_id,
                        display_name,
                    )
            else:
                await conn.execute(
                    """INSERT INTO devices (user_id, device_id, display_name, created_ts,
                                            last_seen_ts, last_seen_ip)
                       VALUES ($1, $2, $3, $4, $4, $5)""",
                    user_id,
                    device_id,
                    display_name,
                    now_ms(),
                    ip,
                )
            await self._insert_tokens(conn, user_id, device_id, tokens)
            return not existed

    async def add_device(self, user_id: str, device_id: str, display_name: str | None) -> bool:
        """A device without access tokens (an appservice's, MSC4190); True if new."""
        created = await self._pool.fetchval(
            """INSERT INTO devices (user_id, device_id, display_name, created_ts, last_seen_ts)
               VALUES ($1, $2, $3, $4, $4)
               ON CONFLICT DO NOTHING RETURNING 1""",
            user_id,
            device_id,
            display_name,
            now_ms(),
        )
        return created is not None

    async def get_access_token(self, token_hash: bytes) -> AccessTokenRecord | None:
        row = await self._pool.fetchrow(
            """SELECT t.id, t.user_id, t.device_id, t.valid_until_ts, t.refresh_token_id,
                      t.used, u.is_guest, u.deactivated, u.locked, u.suspended
               FROM access_tokens t JOIN users u USING (user_id)
               WHERE t.token_hash = $1""",
            token_hash,
        )
        return AccessTokenRecord(*row.values()) if row else None

    async def mark_access_token_used(self, token_id: int, refresh_token_id: int) -> None:
        """First use of a refreshed token: the refresh token it replaced dies now."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE access_tokens SET used = TRUE WHERE id = $1", token_id)
            await conn.execute(
                "DELETE FROM refresh_tokens WHERE next_token_id = $1", refresh_token_id
            )

    async def get_refresh_token(self, token_hash: bytes) -> RefreshTokenRecord | None:
        row = await self._pool.fetchrow(
            "SELECT id, user_id, device_id FROM refresh_tokens WHERE token_hash = $1",
            token_hash,
        )
        return RefreshTokenRecord(*row.values()) if row else None

    async def refresh(self, old: RefreshTokenRecord, tokens: NewTokens) -> bool:
        """Replace `old` with a new refresh token and access token.

        The old refresh token stays valid until its successor is used (the
        spec's rule, so that a client that lost the response can retry); the
        old access token dies at once. Returns False if `old` vanished meanwhile.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT next_token_id FROM refresh_tokens WHERE id = $1 FOR UPDATE",
                old.token_id,
            )
            if row is None:
                return False
            await conn.execute(
                "DELETE FROM access_tokens WHERE refresh_token_id = $1", old.token_id
            )
            if row["next_token_id"] is not None:
                # An earlier, never-used successor is superseded by this one.
                await conn.execute("DELETE FROM refresh_tokens WHERE id = $1", row["next_token_id"])
            # Using `old` is using the successor of its predecessor.
            await conn.execute("DELETE FROM refresh_tokens WHERE next_token_id = $1", old.token_id)
            new_id = await self._insert_tokens(conn, old.user_id, old.device_id, tokens)
            await conn.execute(
                "UPDATE refresh_tokens SET next_token_id = $2 WHERE id = $1",
                old.token_id,
                new_id,
            )
            return True

    async def list_devices(self, user_id: str) -> list[DeviceRecord]:
        rows = await self._pool.fetch(
            """SELECT user_id, device_id, display_name, last_seen_ts, last_seen_ip
               FROM devices WHERE user_id = $1 ORDER BY created_ts, device_id""",
            user_id,
        )
        return [DeviceRecord(*r.values()) for r in rows]

    async def get_device(self, user_id: str, device_id: str) -> DeviceRecord | None:
        row = await self._pool.fetchrow(
            """SELECT user_id, device_id, display_name, last_seen_ts, last_seen_ip
               FROM devices WHERE user_id = $1 AND device_id = $2""",
            user_id,
            device_id,
        )
        return DeviceRecord(*row.values()) if row else None

    async def set_device_display_name(
        self, user_id: str, device_id: str, display_name: str | None
    ) -> bool:
        result = await self._pool.execute(
            "UPDATE devices SET display_name = $3 WHERE user_id = $1 AND device_id = $2",
            user_id,
            device_id,
            display_name,
        )
        return result != "UPDATE 0"

    async def record_last_seen(
        self, user_id: str, device_id: str, ts: int, ip: str | None, user_agent: str | None
    ) -> None:
        await self._pool.execute(
            """UPDATE devices SET last_seen_ts = $3, last_seen_ip = $4, last_seen_user_agent = $5
               WHERE user_id = $1 AND device_id = $2""",
            user_id,
            device_id,
            ts,
            ip,
            user_agent,
        )

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> list[str]:
        """Delete devices and, through the foreign keys, all their tokens;
        return the ids of the devices that existed."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM access_tokens WHERE user_id = $1 AND device_id = ANY($2)",
                user_id,
                device_ids,
            )
            await conn.execute(
                "DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id = ANY($2)",
                user_id,
                device_ids,
            )
            rows = await conn.fetch(
                """DELETE FROM devices WHERE user_id = $1 AND device_id = ANY($2)
                   RETURNING device_id""",
                user_id,
                device_ids,
            )
            return [r["device_id"] for r in rows]

    async def device_ids(self, user_id: str) -> list[str]:
        rows = await self._pool.fetch("SELECT device_id FROM devices WHERE user_id = $1", user_id)
        return [r["device_id"] for r in rows]
