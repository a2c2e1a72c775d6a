"""Registration tokens as administrators manage them (Synapse's admin API shape)."""

from __future__ import annotations

from typing import Any

import asyncpg

from storage.database import now_ms

_COLUMNS = "token, uses_allowed, pending, completed, expiry_time"
# A token that can still start a registration.
_VALID = """((uses_allowed IS NULL OR pending + completed < uses_allowed)
             AND (expiry_time IS NULL OR expiry_time > $1))"""


class TokenExistsError(Exception):
    """A registration token with this value exists already."""


class AdminTokenStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list_tokens(self, valid: bool | None) -> list[dict[str, Any]]:
        condition = "TRUE" if valid is None else (_VALID if valid else f"NOT {_VALID}")
        rows = await self._pool.fetch(
            f"""SELECT {_COLUMNS} FROM registration_tokens
                WHERE $1::bigint IS NOT NULL AND {condition} ORDER BY token""",
            now_ms(),
        )
        return [dict(r) for r in rows]

    async def get(self, token: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM registration_tokens WHERE token = $1", token
        )
        return dict(row) if row else None

    async def create(
        self, token: str, uses_allowed: int | None, expiry_time: int | None
    ) -> dict[str, Any]:
        try:
            row = await self._pool.fetchrow(
                f"""INSERT INTO registration_tokens (token, uses_allowed, expiry_time)
                    VALUES ($1, $2, $3) RETURNING {_COLUMNS}""",
                token,
                uses_allowed,
                expiry_time,
            )
        except asyncpg.UniqueViolationError:
            raise TokenExistsError(token) from None
        return dict(row)

    async def update(self, token: str, changes: dict[str, int | None]) -> dict[str, Any] | None:
        """Set uses_allowed and/or expiry_time (the keys present in `changes`)."""
        assert set(changes) <= {"uses_allowed", "expiry_time"}
        if not changes:
            return await self.get(token)
        sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(changes, start=2))
        row = await self._pool.fetchrow(
            f"UPDATE registration_tokens SET {sets} WHERE token = $1 RETURNING {_COLUMNS}",
            token,
            *changes.values(),
        )
        return dict(row) if row else None

    async def delete(self, token: str) -> bool:
        result = await self._pool.execute("DELETE FROM registration_tokens WHERE token = $1", token)
        return result == "DELETE 1"
