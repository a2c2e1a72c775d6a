"""Upstream OpenID Connect sign-ins: pending requests, subject links, and
what each sign-in went on to create (see schema/0240_upstream_sign_in.sql)."""

from __future__ import annotations

import asyncpg
import attrs


@attrs.frozen
class PendingRequest:
    idp_id: str
    nonce: str
    code_verifier: str
    browser_hash: bytes
    next_path: str
    expires_ts: int


@attrs.frozen
class SignInRecord:
    idp_id: str
    sub: str
    sid: str | None
    user_id: str


class UpstreamStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add_request(
        self,
        state: str,
        idp_id: str,
        nonce: str,
        code_verifier: str,
        browser_hash: bytes,
        next_path: str,
        expires_ts: int,
        now_ts: int,
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM upstream_auth_requests WHERE expires_ts <= $1", now_ts)
            await conn.execute(
                "INSERT INTO upstream_auth_requests"
                " (state, idp_id, nonce, code_verifier, browser_hash, next_path, expires_ts)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                state,
                idp_id,
                nonce,
                code_verifier,
                browser_hash,
                next_path,
                expires_ts,
            )

    async def take_request(self, state: str) -> PendingRequest | None:
        """The pending request of `state`, deleted as it is read: single use."""
        row = await self._pool.fetchrow(
            "DELETE FROM upstream_auth_requests WHERE state = $1"
            " RETURNING idp_id, nonce, code_verifier, browser_hash, next_path, expires_ts",
            state,
        )
        return PendingRequest(**row) if row else None

    async def link(
        self, idp_id: str, sub: str, user_id: str, email: str | None, now_ts: int
    ) -> None:
        await self._pool.execute(
            "INSERT INTO upstream_links (idp_id, sub, user_id, email, created_ts)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            idp_id,
            sub,
            user_id,
            email,
            now_ts,
        )

    async def linked_user(self, idp_id: str, sub: str, email: str | None) -> str | None:
        """The account linked to the subject; its email updated to what the
        provider says now."""
        return await self._pool.fetchval(
            "UPDATE upstream_links SET email = $3 WHERE idp_id = $1 AND sub = $2 RETURNING user_id",
            idp_id,
            sub,
            email,
        )

    async def add_sign_in(
        self, handle_hash: bytes, record: SignInRecord, expires_ts: int, now_ts: int
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM upstream_sign_ins WHERE expires_ts <= $1", now_ts)
            await conn.execute(
                "INSERT INTO upstream_sign_ins"
                " (handle_hash, idp_id, sub, sid, user_id, expires_ts)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                handle_hash,
                record.idp_id,
                record.sub,
                record.sid,
                record.user_id,
                expires_ts,
            )

    async def get_sign_in(self, handle_hash: bytes, now_ts: int) -> SignInRecord | None:
        row = await self._pool.fetchrow(
            "SELECT idp_id, sub, sid, user_id FROM upstream_sign_ins"
            " WHERE handle_hash = $1 AND expires_ts > $2",
            handle_hash,
            now_ts,
        )
        return SignInRecord(**row) if row else None

    async def add_device(self, user_id: str, device_id: str, record: SignInRecord) -> None:
        await self._pool.execute(
            "INSERT INTO upstream_devices (user_id, device_id, idp_id, sub, sid)"
            " VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (user_id, device_id) DO UPDATE"
            " SET idp_id = $3, sub = $4, sid = $5",
            user_id,
            device_id,
            record.idp_id,
            record.sub,
            record.sid,
        )

    async def end_sign_ins(
        self, idp_id: str, sub: str | None, sid: str | None
    ) -> dict[str, list[str]]:
        """Forgets the sign-ins a back-channel logout names (by `sid` if given,
        else every one of `sub`), with their unused login tokens. Returns the
        devices they created, by user, for the caller to delete."""
        where = "idp_id = $1 AND ($2::TEXT IS NULL OR sub = $2) AND ($3::TEXT IS NULL OR sid = $3)"
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT user_id, device_id FROM upstream_devices WHERE {where}", idp_id, sub, sid
            )
            await conn.execute(f"DELETE FROM upstream_sign_ins WHERE {where}", idp_id, sub, sid)
            await conn.execute(f"DELETE FROM login_tokens WHERE {where}", idp_id, sub, sid)
        devices: dict[str, list[str]] = {}
        for row in rows:
            devices.setdefault(row["user_id"], []).append(row["device_id"])
        return devices

    async def users_of(self, idp_id: str, sub: str | None, sid: str | None) -> list[str]:
        """The accounts a logout names: the subject's link, or the users of the sid."""
        if sub is not None:
            return (
                await self._pool.fetchval(
                    "SELECT array_agg(user_id) FROM upstream_links WHERE idp_id = $1 AND sub = $2",
                    idp_id,
                    sub,
                )
                or []
            )
        return (
            await self._pool.fetchval(
                "SELECT array_agg(DISTINCT user_id) FROM ("
                " SELECT user_id FROM upstream_sign_ins WHERE idp_id = $1 AND sid = $2"
                " UNION SELECT user_id FROM upstream_devices WHERE idp_id = $1 AND sid = $2) AS u",
                idp_id,
                sid,
            )
            or []
        )
