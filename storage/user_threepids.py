"""The email addresses (and other 3PIDs) added to accounts."""

from __future__ import annotations

import asyncpg
import attrs


@attrs.frozen
class UserThreepid:
    medium: str
    address: str
    validated_at: int
    added_at: int


class UserThreepidStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def owner(self, medium: str, address: str) -> str | None:
        return await self._pool.fetchval(
            "SELECT user_id FROM user_threepids WHERE medium = $1 AND address = $2",
            medium,
            address,
        )

    async def for_user(self, user_id: str) -> list[UserThreepid]:
        rows = await self._pool.fetch(
            """SELECT medium, address, validated_ts, added_ts FROM user_threepids
               WHERE user_id = $1 ORDER BY medium, address""",
            user_id,
        )
        return [
            UserThreepid(r["medium"], r["address"], r["validated_ts"], r["added_ts"]) for r in rows
        ]

    async def add(
        self, user_id: str, medium: str, address: str, validated_ts: int, now: int
    ) -> bool:
        """Add the address to the account; False if another account has it."""
        owner = await self._pool.fetchval(
            """INSERT INTO user_threepids (user_id, medium, address, validated_ts, added_ts)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (medium, address) DO UPDATE SET user_id = user_threepids.user_id
               RETURNING user_id""",
            user_id,
            medium,
            address,
            validated_ts,
            now,
        )
        return owner == user_id

    async def remove(self, user_id: str, medium: str, address: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM user_threepids WHERE user_id = $1 AND medium = $2 AND address = $3",
            user_id,
            medium,
            address,
        )
        return status != "DELETE 0"

    async def remove_all(self, user_id: str) -> None:
        await self._pool.execute("DELETE FROM user_threepids WHERE user_id = $1", user_id)
