"""Sessions validating an email address by a token mailed to it."""

from __future__ import annotations

import asyncpg
import attrs


@attrs.frozen
class ValidationSession:
    session_id: str
    client_secret: str
    medium: str
    address: str
    last_send_attempt: int
    token_hash: str
    token_expires_ts: int
    next_link: str | None
    created_ts: int
    validated_ts: int | None


_COLUMNS = """session_id, client_secret, medium, address, last_send_attempt, token_hash,
              token_expires_ts, next_link, created_ts, validated_ts"""


class ThreepidValidationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find(self, client_secret: str, medium: str, address: str) -> ValidationSession | None:
        row = await self._pool.fetchrow(
            f"""SELECT {_COLUMNS} FROM threepid_validation_sessions
                WHERE client_secret = $1 AND medium = $2 AND address = $3""",
            client_secret,
            medium,
            address,
        )
        return ValidationSession(**row) if row is not None else None

    async def get(self, session_id: str) -> ValidationSession | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM threepid_validation_sessions WHERE session_id = $1",
            session_id,
        )
        return ValidationSession(**row) if row is not None else None

    async def upsert(self, session: ValidationSession) -> None:
        """Record a session, or a new token sent for it (which un-validates nothing)."""
        await self._pool.execute(
            f"""INSERT INTO threepid_validation_sessions ({_COLUMNS})
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                ON CONFLICT (session_id) DO UPDATE SET
                    last_send_attempt = EXCLUDED.last_send_attempt,
                    token_hash = EXCLUDED.token_hash,
                    token_expires_ts = EXCLUDED.token_expires_ts,
                    next_link = EXCLUDED.next_link""",
            *attrs.astuple(session),
        )

    async def delete(self, session_id: str) -> None:
        await self._pool.execute(
            "DELETE FROM threepid_validation_sessions WHERE session_id = $1", session_id
        )

    async def mark_validated(self, session_id: str, now: int) -> None:
        await self._pool.execute(
            """UPDATE threepid_validation_sessions SET validated_ts = $2
               WHERE session_id = $1 AND validated_ts IS NULL""",
            session_id,
            now,
        )

    async def delete_created_before(self, ts: int) -> None:
        await self._pool.execute(
            "DELETE FROM threepid_validation_sessions WHERE created_ts < $1", ts
        )
