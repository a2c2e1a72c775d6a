"""Accounts and their profiles."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import attrs

from storage.database import now_ms


@attrs.frozen
class UserRecord:
    user_id: str
    password_hash: str | None
    created_ts: int
    admin: bool
    is_guest: bool
    deactivated: bool
    locked: bool
    shadow_banned: bool
    user_type: str | None
    suspended: bool = False


@attrs.frozen
class Profile:
    displayname: str | None
    avatar_url: str | None
    fields: dict[str, Any]


class UserExistsError(Exception):
    """An account with this user id exists already."""


class UserStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_user(
        self,
        user_id: str,
        password_hash: str | None,
        *,
        admin: bool = False,
        is_guest: bool = False,
        user_type: str | None = None,
        displayname: str | None = None,
    ) -> None:
        """Create the account and its profile together, or neither."""
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                await conn.execute(
                    """INSERT INTO users (user_id, password_hash, created_ts, admin,
                                          is_guest, user_type)
                       VALUES ($1, $2, $3, $4, $5, $6)""",
                    user_id,
                    password_hash,
                    now_ms(),
                    admin,
                    is_guest,
                    user_type,
                )
            except asyncpg.UniqueViolationError:
                raise UserExistsError(user_id) from None
            await conn.execute(
                "INSERT INTO profiles (user_id, displayname) VALUES ($1, $2)",
                user_id,
                displayname,
            )

    async def get_user(self, user_id: str) -> UserRecord | None:
        row = await self._pool.fetchrow(
            """SELECT user_id, password_hash, created_ts, admin, is_guest, deactivated,
                      locked, shadow_banned, user_type, suspended
               FROM users WHERE user_id = $1""",
            user_id,
        )
        return UserRecord(**row) if row else None

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> None:
        await self._pool.execute(
            "UPDATE users SET password_hash = $2 WHERE user_id = $1", user_id, password_hash
        )

    async def deactivate(self, user_id: str, *, erase: bool = False) -> None:
        """Mark deactivated (and erased, with `erase`), forget the password and
        clear the profile, in one step."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE users SET deactivated = TRUE, password_hash = NULL,
                                    erased = erased OR $2
                   WHERE user_id = $1""",
                user_id,
                erase,
            )
            await conn.execute(
                """UPDATE profiles SET displayname = NULL, avatar_url = NULL, fields = '{}'
                   WHERE user_id = $1""",
                user_id,
            )

    async def get_profile(self, user_id: str) -> Profile | None:
        row = await self._pool.fetchrow(
            "SELECT displayname, avatar_url, fields FROM profiles WHERE user_id = $1", user_id
        )
        if row is None:
            return None
        return Profile(row["displayname"], row["avatar_url"], json.loads(row["fields"]))

    async def set_profile_field(self, user_id: str, key: str, value: Any) -> None:
        """Set one profile key; None removes it. displayname and avatar_url have columns."""
        if key in ("displayname", "avatar_url"):
            await self._pool.execute(
                f"UPDATE profiles SET {key} = $2 WHERE user_id = $1", user_id, value
            )
        elif value is None:
            await self._pool.execute(
                "UPDATE profiles SET fields = fields - $2 WHERE user_id = $1", user_id, key
            )
        else:
            await self._pool.execute(
                """UPDATE profiles SET fields = jsonb_set(fields, ARRAY[$2], $3::jsonb)
                   WHERE user_id = $1""",
                user_id,
                key,
                json.dumps(value),
            )
