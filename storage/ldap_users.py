"""Which accounts the LDAP directory created, and the entry each came from."""

from __future__ import annotations

import asyncpg

from storage.database import now_ms


class LdapUserStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, user_id: str, dn: str, email: str | None) -> None:
        """Remember that the directory created `user_id` (a second call changes nothing)."""
        await self._pool.execute(
            """INSERT INTO ldap_users (user_id, dn, email, created_ts)
               VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING""",
            user_id,
            dn,
            email,
            now_ms(),
        )

    async def is_directory_user(self, user_id: str) -> bool:
        return bool(
            await self._pool.fetchval("SELECT 1 FROM ldap_users WHERE user_id = $1", user_id)
        )
