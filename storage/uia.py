"""User-interactive authentication sessions and registration tokens."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import attrs

from storage.database import now_ms

# The params key under which a registration session records the account it
# created: its registration token was counted as used then, not pending.
REGISTERED_USER_KEY = "registered_user_id"


@attrs.frozen
class UiaSessionRecord:
    session_id: str
    created_ts: int
    method: str
    uri: str
    completed: dict[str, Any]
    params: dict[str, Any]


class UiaStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_session(
        self, session_id: str, method: str, uri: str, params: dict[str, Any]
    ) -> None:
        await self._pool.execute(
            """INSERT INTO ui_auth_sessions (session_id, created_ts, method, uri, params)
               VALUES ($1, $2, $3, $4, $5::jsonb)""",
            session_id,
            now_ms(),
            method,
            uri,
            json.dumps(params),
        )

    async def get_session(self, session_id: str) -> UiaSessionRecord | None:
        row = await self._pool.fetchrow(
            """SELECT session_id, created_ts, method, uri, completed, params
               FROM ui_auth_sessions WHERE session_id = $1""",
            session_id,
        )
        if row is None:
            return None
        return UiaSessionRecord(
            row["session_id"],
            row["created_ts"],
            row["method"],
            row["uri"],
            json.loads(row["completed"]),
            json.loads(row["params"]),
        )

    async def complete_stage(self, session_id: str, stage: str, result: Any) -> None:
        await self._pool.execute(
            """UPDATE ui_auth_sessions SET completed = jsonb_set(completed, ARRAY[$2], $3::jsonb)
               WHERE session_id = $1""",
            session_id,
            stage,
            json.dumps(result),
        )

    async def set_params(self, session_id: str, params: dict[str, Any]) -> None:
        """Replace what the session keeps."""
        await self._pool.execute(
            "UPDATE ui_auth_sessions SET params = $2::jsonb WHERE session_id = $1",
            session_id,
            json.dumps(params),
        )

    async def update_params(self, session_id: str, params: dict[str, Any]) -> None:
        """Merge `params` into what the session keeps."""
        await self._pool.execute(
            "UPDATE ui_auth_sessions SET params = params || $2::jsonb WHERE session_id = $1",
            session_id,
            json.dumps(params),
        )

    async def delete_session(self, session_id: str) -> None:
        await self._pool.execute("DELETE FROM ui_auth_sessions WHERE session_id = $1", session_id)

    async def delete_sessions_before(self, ts: int) -> None:
        """Drop expired sessions; the registration tokens they held are pending no more
        (except those of sessions whose registration completed: already counted)."""
        await self._pool.execute(
            """WITH gone AS (
                   DELETE FROM ui_auth_sessions WHERE created_ts < $1
                   RETURNING CASE WHEN params ? $2 THEN NULL
                                  ELSE completed ->> 'm.login.registration_token' END AS token
               )
               UPDATE registration_tokens t SET pending = GREATEST(t.pending - g.n, 0)
               FROM (SELECT token, count(*) AS n FROM gone WHERE token IS NOT NULL
                     GROUP BY token) g
               WHERE t.token = g.token""",
            ts,
            REGISTERED_USER_KEY,
        )


class RegistrationTokenStore:
    """Tokens that allow registration when it requires one (Synapse's semantics)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self, token: str, *, uses_allowed: int | None = None, expiry_time: int | None = None
    ) -> None:
        await self._pool.execute(
            "INSERT INTO registration_tokens (token, uses_allowed, expiry_time) VALUES ($1, $2, $3)",
            token,
            uses_allowed,
            expiry_time,
        )

    async def is_valid(self, token: str) -> bool:
        return bool(
            await self._pool.fetchval(
                """SELECT 1 FROM registration_tokens WHERE token = $1
                   AND (uses_allowed IS NULL OR pending + completed < uses_allowed)
                   AND (expiry_time IS NULL OR expiry_time > $2)""",
                token,
                now_ms(),
            )
        )

    async def reserve(self, token: str) -> bool:
        """Count a registration in progress against the token, if it still allows one."""
        result = await self._pool.execute(
            """UPDATE registration_tokens SET pending = pending + 1 WHERE token = $1
               AND (uses_allowed IS NULL OR pending + completed < uses_allowed)
               AND (expiry_time IS NULL OR expiry_time > $2)""",
            token,
            now_ms(),
        )
        return result == "UPDATE 1"

    async def complete(self, token: str) -> None:
        await self._pool.execute(
            """UPDATE registration_tokens
               SET pending = GREATEST(pending - 1, 0), completed = completed + 1
               WHERE token = $1""",
            token,
        )
