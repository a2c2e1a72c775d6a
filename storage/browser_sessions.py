"""Signed-in browsers of the server's own web pages (see homeserver/web)."""

from __future__ import annotations

import asyncpg
import attrs


@attrs.frozen
class BrowserSessionRecord:
    user_id: str
    authenticated_by: str
    csrf_key: bytes
    created_ts: int
    expires_ts: int


class BrowserSessionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(
        self,
        secret_hash: bytes,
        user_id: str,
        authenticated_by: str,
        csrf_key: bytes,
        created_ts: int,
        expires_ts: int,
    ) -> None:
        await self._pool.execute(
            "INSERT INTO browser_sessions"
            " (secret_hash, user_id, authenticated_by, csrf_key, created_ts, expires_ts)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            secret_hash,
            user_id,
            authenticated_by,
            csrf_key,
            created_ts,
            expires_ts,
        )

    async def get(self, secret_hash: bytes, now_ts: int) -> BrowserSessionRecord | None:
        # A deactivated account's browsers are signed out whichever path
        # deactivated it (client API, admin API, account page).
        row = await self._pool.fetchrow(
            "SELECT b.user_id, b.authenticated_by, b.csrf_key, b.created_ts, b.expires_ts"
            " FROM browser_sessions b JOIN users u ON u.user_id = b.user_id"
            " WHERE b.secret_hash = $1 AND b.expires_ts > $2 AND NOT u.deactivated",
            secret_hash,
            now_ts,
        )
        return BrowserSessionRecord(**row) if row else None

    async def remove(self, secret_hash: bytes) -> None:
        await self._pool.execute("DELETE FROM browser_sessions WHERE secret_hash = $1", secret_hash)

    async def remove_user(self, user_id: str) -> int:
        """Ends every browser session of a user (deactivation, upstream
        back-channel logout); returns how many there were."""
        status = await self._pool.execute(
            "DELETE FROM browser_sessions WHERE user_id = $1", user_id
        )
        return int(status.split()[-1])

    async def remove_expired(self, now_ts: int) -> int:
        status = await self._pool.execute(
            "DELETE FROM browser_sessions WHERE expires_ts <= $1", now_ts
        )
        return int(status.split()[-1])
