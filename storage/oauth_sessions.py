"""Which devices are OAuth 2.0 sessions, and the rotated-away refresh tokens
that must end them if they come back (see homeserver/oauth/tokens.py).

The tokens themselves are the ordinary ones of storage/sessions.py; this
module only reads their digests to find the device a token belongs to.
"""

from __future__ import annotations

import asyncpg
import attrs

from storage.database import now_ms


@attrs.frozen
class OAuthSessionRecord:
    user_id: str
    device_id: str
    client_id: str
    client_name: str | None
    scope: str
    created_ts: int
    last_seen_ts: int | None
    last_seen_ip: str | None


@attrs.frozen
class TokenOwner:
    """The device a token belongs to, and the OAuth client if it is an OAuth session."""

    user_id: str
    device_id: str
    client_id: str | None


class OAuthSessionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, user_id: str, device_id: str, client_id: str, scope: str) -> None:
        """Mark a device as an OAuth session (a reused device changes client and scope)."""
        await self._pool.execute(
            """INSERT INTO oauth_sessions (user_id, device_id, client_id, scope, created_ts)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (user_id, device_id)
               DO UPDATE SET client_id = EXCLUDED.client_id, scope = EXCLUDED.scope""",
            user_id,
            device_id,
            client_id,
            scope,
            now_ms(),
        )

    async def list(self, user_id: str) -> list[OAuthSessionRecord]:
        rows = await self._pool.fetch(
            """SELECT s.user_id, s.device_id, s.client_id, c.metadata->>'client_name',
                      s.scope, s.created_ts, d.last_seen_ts, d.last_seen_ip
               FROM oauth_sessions s
               JOIN oauth_clients c USING (client_id)
               JOIN devices d USING (user_id, device_id)
               WHERE s.user_id = $1 ORDER BY s.created_ts, s.device_id""",
            user_id,
        )
        return [OAuthSessionRecord(*r.values()) for r in rows]

    async def scope_of(self, user_id: str, device_id: str) -> str | None:
        return await self._pool.fetchval(
            "SELECT scope FROM oauth_sessions WHERE user_id = $1 AND device_id = $2",
            user_id,
            device_id,
        )

    async def owner_of_access_token(self, token_hash: bytes) -> TokenOwner | None:
        return await self._owner_in("access_tokens", token_hash)

    async def owner_of_refresh_token(self, token_hash: bytes) -> TokenOwner | None:
        return await self._owner_in("refresh_tokens", token_hash)

    async def spend_refresh_token(self, token_hash: bytes, user_id: str, device_id: str) -> None:
        await self._pool.execute(
            """INSERT INTO oauth_spent_refresh_tokens (token_hash, user_id, device_id)
               VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
            token_hash,
            user_id,
            device_id,
        )

    async def owner_of_spent_refresh_token(self, token_hash: bytes) -> TokenOwner | None:
        return await self._owner_in("oauth_spent_refresh_tokens", token_hash)

    async def _owner_in(self, table: str, token_hash: bytes) -> TokenOwner | None:
        """Whose token this is, in one of the three token tables, and the OAuth
        client of its session (None for a session not made by OAuth)."""
        row = await self._pool.fetchrow(
            f"""SELECT t.user_id, t.device_id, s.client_id FROM {table} t
               LEFT JOIN oauth_sessions s USING (user_id, device_id)
               WHERE t.token_hash = $1""",
            token_hash,
        )
        return TokenOwner(*row.values()) if row else None
