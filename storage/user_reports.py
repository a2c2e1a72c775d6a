"""Reports of users (client-server API v1.14), kept for the server's admins."""

from __future__ import annotations

from typing import Any

import asyncpg

from storage.database import now_ms

_COLUMNS = "id, received_ts, target_user_id, user_id, reason"


def _like(text: str | None) -> str | None:
    """A substring pattern for LIKE, the text's wildcards escaped."""
    if text is None:
        return None
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class UserReportStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def report_local_user(self, target_user_id: str, user_id: str, reason: str) -> None:
        """Record the report if the target is an account here, in one statement
        either way, so that the time taken tells nothing of its existence."""
        await self._pool.execute(
            """INSERT INTO user_reports (received_ts, target_user_id, user_id, reason)
               SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM users WHERE user_id = $2)""",
            now_ms(),
            target_user_id,
            user_id,
            reason,
        )

    async def page(
        self,
        *,
        user_id: str | None,
        target_user_id: str | None,
        backwards: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """Reports whose reporter and target ids contain the given texts."""
        condition = """($1::text IS NULL OR user_id LIKE $1)
                       AND ($2::text IS NULL OR target_user_id LIKE $2)"""
        order = "DESC" if backwards else "ASC"
        reporter, target = _like(user_id), _like(target_user_id)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT {_COLUMNS} FROM user_reports WHERE {condition}
                    ORDER BY received_ts {order}, id {order} OFFSET $3 LIMIT $4""",
                reporter,
                target,
                offset,
                limit,
            )
            total = await conn.fetchval(
                f"SELECT count(*) FROM user_reports WHERE {condition}", reporter, target
            )
        return [dict(r) for r in rows], total

    async def get(self, report_id: int) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM user_reports WHERE id = $1", report_id
        )
        return dict(row) if row else None

    async def delete(self, report_id: int) -> bool:
        result = await self._pool.execute("DELETE FROM user_reports WHERE id = $1", report_id)
        return result == "DELETE 1"
