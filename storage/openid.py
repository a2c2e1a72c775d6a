"""OpenID tokens that let a third party confirm who a user is."""

from __future__ import annotations

import asyncpg


class OpenIdStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, token_hash: bytes, user_id: str, valid_until_ts: int) -> None:
        await self._pool.execute(
            "INSERT INTO openid_tokens (token_hash, user_id, valid_until_ts) VALUES ($1, $2, $3)",
            token_hash,
            user_id,
            valid_until_ts,
        )

    async def user_for(self, token_hash: bytes, now_ts: int) -> str | None:
        return await self._pool.fetchval(
            "SELECT user_id FROM openid_tokens WHERE token_hash = $1 AND valid_until_ts > $2",
            token_hash,
            now_ts,
        )
