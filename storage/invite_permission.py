"""The invite permission settings (MSC4380) of every user, for start-up."""

from __future__ import annotations

import asyncpg


class InvitePermissionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def all_settings(self, user_id: str | None = None) -> list[tuple[str, str, str]]:
        """(user id, type, content JSON) of every stored setting (of one
        user, if given); the predicate is the partial index's (schema/0321)."""
        rows = await self._pool.fetch(
            """SELECT user_id, type, content FROM account_data
               WHERE room_id = ''
                 AND type IN ('m.invite_permission_config',
                              'org.matrix.msc4380.invite_permission_config')
                 AND ($1::text IS NULL OR user_id = $1)""",
            user_id,
        )
        return [(r["user_id"], r["type"], r["content"]) for r in rows]
