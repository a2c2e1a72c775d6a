"""Accounts as administrators see them: paged lists, flags, sessions, overrides."""

from __future__ import annotations

from typing import Any

import asyncpg
import attrs

# order_by values of the user list: columns of the user rows below.
USER_ORDER = frozenset(
    {
        "name",
        "is_guest",
        "admin",
        "user_type",
        "deactivated",
        "shadow_banned",
        "displayname",
        "avatar_url",
        "creation_ts",
        "last_seen_ts",
        "locked",
    }
)

_USER_COLUMNS = """u.user_id AS name, u.user_type, u.is_guest, u.admin, u.deactivated,
    u.shadow_banned, p.displayname, p.avatar_url, u.created_ts AS creation_ts, u.erased,
    u.locked, u.suspended,
    (SELECT max(d.last_seen_ts) FROM devices d WHERE d.user_id = u.user_id) AS last_seen_ts"""


@attrs.frozen
class UserFilter:
    # Substring of the user id.
    user_id: str | None = None
    # Substring of the user id or the display name.
    name: str | None = None
    guests: bool = True
    deactivated: bool = False
    locked: bool = True
    # None: both; True: admins only; False: non-admins only.
    admins: bool | None = None


@attrs.frozen
class RateLimitOverride:
    messages_per_second: int
    burst_count: int


def _like(text: str | None) -> str | None:
    if text is None:
        return None
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class AdminUserStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list_users(
        self, where: UserFilter, *, order_by: str, backwards: bool, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of users in the given order (then by user id) and the number matching."""
        assert order_by in USER_ORDER
        direction = "DESC" if backwards else "ASC"
        condition = """($1::text IS NULL OR u.user_id ILIKE $1)
            AND ($2::text IS NULL OR u.user_id ILIKE $2 OR p.displayname ILIKE $2)
            AND ($3 OR NOT u.is_guest)
            AND ($4 OR NOT u.deactivated)
            AND ($5 OR NOT u.locked)
            AND ($6::boolean IS NULL OR u.admin = $6)"""
        args = (
            _like(where.user_id),
            _like(where.name),
            where.guests,
            where.deactivated,
            where.locked,
            where.admins,
        )
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT * FROM (
                        SELECT {_USER_COLUMNS}
                        FROM users u LEFT JOIN profiles p USING (user_id)
                        WHERE {condition}
                    ) u
                    ORDER BY u.{order_by} {direction} NULLS LAST, u.name {direction}
                    OFFSET $7 LIMIT $8""",
                *args,
                offset,
                limit,
            )
            total = await conn.fetchval(
                f"""SELECT count(*) FROM users u LEFT JOIN profiles p USING (user_id)
                    WHERE {condition}""",
                *args,
            )
        return [dict(r) for r in rows], total

    async def user_details(self, user_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            f"""SELECT {_USER_COLUMNS} FROM users u LEFT JOIN profiles p USING (user_id)
                WHERE u.user_id = $1""",
            user_id,
        )
        return dict(row) if row else None

    async def set_flag(self, user_id: str, flag: str, value: bool) -> None:
        """Set one of the boolean account flags an admin controls."""
        assert flag in ("admin", "locked", "suspended", "shadow_banned", "deactivated", "erased")
        await self._pool.execute(f"UPDATE users SET {flag} = $2 WHERE user_id = $1", user_id, value)

    async def set_user_type(self, user_id: str, user_type: str | None) -> None:
        await self._pool.execute(
            "UPDATE users SET user_type = $2 WHERE user_id = $1", user_id, user_type
        )

    async def shadow_banned_users(self) -> set[str]:
        rows = await self._pool.fetch("SELECT user_id FROM users WHERE shadow_banned")
        return {r["user_id"] for r in rows}

    async def devices(self, user_id: str) -> list[dict[str, Any]]:
        """The user's devices with where and when each was last used."""
        rows = await self._pool.fetch(
            """SELECT device_id, display_name, last_seen_ip, last_seen_ts,
                      last_seen_user_agent, user_id
               FROM devices WHERE user_id = $1 ORDER BY created_ts, device_id""",
            user_id,
        )
        return [dict(r) for r in rows]

    async def get_ratelimit_override(self, user_id: str) -> RateLimitOverride | None:
        row = await self._pool.fetchrow(
            """SELECT messages_per_second, burst_count FROM ratelimit_overrides
               WHERE user_id = $1""",
            user_id,
        )
        return RateLimitOverride(**row) if row else None

    async def all_ratelimit_overrides(self) -> dict[str, RateLimitOverride]:
        rows = await self._pool.fetch(
            "SELECT user_id, messages_per_second, burst_count FROM ratelimit_overrides"
        )
        return {
            r["user_id"]: RateLimitOverride(r["messages_per_second"], r["burst_count"])
            for r in rows
        }

    async def set_ratelimit_override(self, user_id: str, value: RateLimitOverride) -> None:
        await self._pool.execute(
            """INSERT INTO ratelimit_overrides (user_id, messages_per_second, burst_count)
               VALUES ($1, $2, $3)
               ON CONFLICT (user_id) DO UPDATE
               SET messages_per_second = $2, burst_count = $3""",
            user_id,
            value.messages_per_second,
            value.burst_count,
        )

    async def delete_ratelimit_override(self, user_id: str) -> None:
        await self._pool.execute("DELETE FROM ratelimit_overrides WHERE user_id = $1", user_id)
