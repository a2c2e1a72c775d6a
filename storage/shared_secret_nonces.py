"""The nonces of shared-secret registration (schema/0590): issued by any
process of a deployment, usable once through any other."""

from __future__ import annotations

import asyncpg


class SharedSecretNonceStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, nonce: str, expires_ts: int, now_ts: int) -> None:
        """Record a new nonce; the expired ones go in the same transaction
        (nonces are few: no cleanup job of their own)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM shared_secret_nonces WHERE expires_ts <= $1", now_ts)
            await conn.execute(
                "INSERT INTO shared_secret_nonces (nonce, expires_ts) VALUES ($1, $2)",
                nonce,
                expires_ts,
            )

    async def take(self, nonce: str, now_ts: int) -> bool:
        """Whether the nonce was issued and has not expired; it is deleted in
        the same statement, so two racing requests cannot both use it."""
        expires_ts = await self._pool.fetchval(
            "DELETE FROM shared_secret_nonces WHERE nonce = $1 RETURNING expires_ts", nonce
        )
        return expires_ts is not None and expires_ts > now_ts
