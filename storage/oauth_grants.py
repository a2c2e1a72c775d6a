"""Authorization requests, device authorization grants and cross-signing
reset approvals of the OAuth 2.0 server (see homeserver/oauth/grants.py).

Codes are looked up by digest only. Every state change is a single
conditional UPDATE, so two concurrent exchanges of one code cannot both win.
"""

from __future__ import annotations

import asyncpg
import attrs

from storage.database import now_ms


@attrs.frozen
class AuthorizationRecord:
    authorization_id: str
    client_id: str
    redirect_uri: str
    scope: str
    device_id: str
    state: str | None
    nonce: str | None
    code_challenge: str
    response_mode: str
    prompt_create: bool
    created_ts: int
    expires_ts: int
    user_id: str | None
    exchanged_ts: int | None


_AUTH_COLUMNS = """authorization_id, client_id, redirect_uri, scope, device_id, state, nonce,
    code_challenge, response_mode, prompt_create, created_ts, expires_ts, user_id,
    exchanged_ts"""


@attrs.frozen
class DeviceGrantRecord:
    user_code: str
    client_id: str
    scope: str
    device_id: str
    created_ts: int
    expires_ts: int
    status: str
    user_id: str | None
    last_poll_ts: int | None
    poll_interval_s: int


_DEVICE_COLUMNS = """user_code, client_id, scope, device_id, created_ts, expires_ts, status,
    user_id, last_poll_ts, poll_interval_s"""


class OAuthGrantStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add_authorization(self, record: AuthorizationRecord) -> None:
        await self._pool.execute("DELETE FROM oauth_authorizations WHERE expires_ts < $1", now_ms())
        await self._pool.execute(
            f"INSERT INTO oauth_authorizations ({_AUTH_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            *attrs.astuple(record),
        )

    async def pending_authorization(self, authorization_id: str) -> AuthorizationRecord | None:
        """A request not yet approved or denied, and not expired."""
        row = await self._pool.fetchrow(
            f"""SELECT {_AUTH_COLUMNS} FROM oauth_authorizations
                WHERE authorization_id = $1 AND user_id IS NULL AND expires_ts > $2""",
            authorization_id,
            now_ms(),
        )
        return AuthorizationRecord(*row.values()) if row else None

    async def approve_authorization(
        self,
        authorization_id: str,
        user_id: str,
        code_hash: bytes,
        code_expires_ts: int,
        upstream_sign_in: bytes | None,
    ) -> bool:
        """Bind a pending request to the user, its code and the upstream
        sign-in of the approving browser; False if it was no longer pending."""
        result = await self._pool.execute(
            """UPDATE oauth_authorizations
               SET user_id = $2, code_hash = $3, expires_ts = $4, upstream_sign_in = $6
               WHERE authorization_id = $1 AND user_id IS NULL AND expires_ts > $5""",
            authorization_id,
            user_id,
            code_hash,
            code_expires_ts,
            now_ms(),
            upstream_sign_in,
        )
        return result != "UPDATE 0"

    async def upstream_sign_in_of_authorization(self, authorization_id: str) -> bytes | None:
        return await self._pool.fetchval(
            "SELECT upstream_sign_in FROM oauth_authorizations WHERE authorization_id = $1",
            authorization_id,
        )

    async def delete_authorization(self, authorization_id: str) -> AuthorizationRecord | None:
        row = await self._pool.fetchrow(
            f"""DELETE FROM oauth_authorizations WHERE authorization_id = $1 AND user_id IS NULL
                RETURNING {_AUTH_COLUMNS}""",
            authorization_id,
        )
        return AuthorizationRecord(*row.values()) if row else None

    async def exchange_code(self, code_hash: bytes) -> tuple[AuthorizationRecord | None, bool]:
        """The approved request of a code, marked exchanged now.

        Returns (record, True) the first time, (record, False) for a code
        exchanged before (a replay), and (None, False) for an unknown or
        expired code.
        """
        now = now_ms()
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""SELECT {_AUTH_COLUMNS} FROM oauth_authorizations
                    WHERE code_hash = $1 AND expires_ts > $2 FOR UPDATE""",
                code_hash,
                now,
            )
            if row is None:
                return None, False
            record = AuthorizationRecord(*row.values())
            if record.exchanged_ts is not None:
                return record, False
            await conn.execute(
                "UPDATE oauth_authorizations SET exchanged_ts = $2 WHERE authorization_id = $1",
                record.authorization_id,
                now,
            )
            return record, True

    async def add_device_grant(self, device_code_hash: bytes, record: DeviceGrantRecord) -> None:
        await self._pool.execute("DELETE FROM oauth_device_grants WHERE expires_ts < $1", now_ms())
        await self._pool.execute(
            f"INSERT INTO oauth_device_grants (device_code_hash, {_DEVICE_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            device_code_hash,
            *attrs.astuple(record),
        )

    async def device_grant_by_user_code(self, user_code: str) -> DeviceGrantRecord | None:
        """A grant still waiting for the user, by the code they typed."""
        row = await self._pool.fetchrow(
            f"""SELECT {_DEVICE_COLUMNS} FROM oauth_device_grants
                WHERE user_code = $1 AND status = 'pending' AND expires_ts > $2""",
            user_code,
            now_ms(),
        )
        return DeviceGrantRecord(*row.values()) if row else None

    async def decide_device_grant(
        self,
        user_code: str,
        status: str,
        user_id: str | None,
        upstream_sign_in: bytes | None = None,
    ) -> bool:
        result = await self._pool.execute(
            """UPDATE oauth_device_grants SET status = $2, user_id = $3, upstream_sign_in = $5
               WHERE user_code = $1 AND status = 'pending' AND expires_ts > $4""",
            user_code,
            status,
            user_id,
            now_ms(),
            upstream_sign_in,
        )
        return result != "UPDATE 0"

    async def upstream_sign_in_of_device_grant(self, device_code_hash: bytes) -> bytes | None:
        return await self._pool.fetchval(
            "SELECT upstream_sign_in FROM oauth_device_grants WHERE device_code_hash = $1",
            device_code_hash,
        )

    async def poll_device_grant(self, device_code_hash: bytes) -> DeviceGrantRecord | None:
        """The grant as it was before this poll; the poll time is recorded, and
        an approved grant becomes 'exchanged' (so it yields tokens once)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""SELECT {_DEVICE_COLUMNS} FROM oauth_device_grants
                    WHERE device_code_hash = $1 FOR UPDATE""",
                device_code_hash,
            )
            if row is None:
                return None
            record = DeviceGrantRecord(*row.values())
            await conn.execute(
                """UPDATE oauth_device_grants SET last_poll_ts = $2,
                       status = CASE WHEN status = 'approved' THEN 'exchanged' ELSE status END
                   WHERE device_code_hash = $1""",
                device_code_hash,
                now_ms(),
            )
            return record

    async def slow_down(self, device_code_hash: bytes, seconds: int) -> None:
        """RFC 8628 section 3.5: a client polling too fast waits `seconds` more from now on."""
        await self._pool.execute(
            """UPDATE oauth_device_grants SET poll_interval_s = poll_interval_s + $2
               WHERE device_code_hash = $1""",
            device_code_hash,
            seconds,
        )

    async def allow_cross_signing_reset(self, user_id: str, expires_ts: int) -> None:
        await self._pool.execute(
            """INSERT INTO oauth_cross_signing_resets (user_id, expires_ts) VALUES ($1, $2)
               ON CONFLICT (user_id) DO UPDATE SET expires_ts = EXCLUDED.expires_ts""",
            user_id,
            expires_ts,
        )

    async def cross_signing_reset_allowed(self, user_id: str) -> bool:
        return bool(
            await self._pool.fetchval(
                """SELECT 1 FROM oauth_cross_signing_resets
                   WHERE user_id = $1 AND expires_ts > $2""",
                user_id,
                now_ms(),
            )
        )

    async def use_cross_signing_reset(self, user_id: str) -> None:
        await self._pool.execute(
            "DELETE FROM oauth_cross_signing_resets WHERE user_id = $1", user_id
        )
