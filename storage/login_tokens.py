"""m.login.token: single-use login tokens (only their hashes are kept)."""

from __future__ import annotations

import asyncpg
import attrs


@attrs.frozen
class LoginTokenRecord:
    user_id: str
    expires_ts: int
    idp_id: str | None
    sub: str | None
    sid: str | None


class LoginTokenStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(
        self,
        token_hash: bytes,
        user_id: str,
        expires_ts: int,
        idp_id: str | None,
        sub: str | None,
        sid: str | None,
        now_ts: int,
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM login_tokens WHERE expires_ts <= $1", now_ts)
            await conn.execute(
                "INSERT INTO login_tokens (token_hash, user_id, expires_ts, idp_id, sub, sid)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                token_hash,
                user_id,
                expires_ts,
                idp_id,
                sub,
                sid,
            )

    async def take(self, token_hash: bytes) -> LoginTokenRecord | None:
        """The token's record, deleted in the same statement: a token is
        redeemed once even by two racing requests."""
        row = await self._pool.fetchrow(
            "DELETE FROM login_tokens WHERE token_hash = $1"
            " RETURNING user_id, expires_ts, idp_id, sub, sid",
            token_hash,
        )
        return LoginTokenRecord(**row) if row else None
