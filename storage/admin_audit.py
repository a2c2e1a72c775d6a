"""The admin audit log: appended to, read back, never changed."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import attrs

from storage.database import now_ms


@attrs.frozen
class AuditEntry:
    admin_user_id: str | None
    ip: str | None
    action: str
    method: str
    path: str
    target: str | None
    params: dict[str, Any]
    status: int
    errcode: str | None


@attrs.frozen
class AuditFilter:
    admin_user_id: str | None = None
    target: str | None = None
    action: str | None = None
    from_ts: int | None = None
    to_ts: int | None = None


class AuditStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def append(self, entry: AuditEntry) -> None:
        await self._pool.execute(
            """INSERT INTO admin_audit_log (ts, admin_user_id, ip, action, method, path,
                                            target, params, status, errcode)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)""",
            now_ms(),
            entry.admin_user_id,
            entry.ip,
            entry.action,
            entry.method,
            entry.path,
            entry.target,
            json.dumps(entry.params),
            entry.status,
            entry.errcode,
        )

    async def page(
        self, where: AuditFilter, *, offset: int, limit: int, backwards: bool
    ) -> tuple[list[dict[str, Any]], int]:
        """(entries from `offset` in id order, newest first if `backwards`; total matching)."""
        order = "DESC" if backwards else "ASC"
        condition = """($1::text IS NULL OR admin_user_id = $1)
                   AND ($2::text IS NULL OR target = $2)
                   AND ($3::text IS NULL OR action = $3)
                   AND ($4::bigint IS NULL OR ts >= $4)
                   AND ($5::bigint IS NULL OR ts <= $5)"""
        args = (where.admin_user_id, where.target, where.action, where.from_ts, where.to_ts)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT id, ts, admin_user_id, ip, action, method, path, target, params,
                           status, errcode
                    FROM admin_audit_log WHERE {condition}
                    ORDER BY id {order} OFFSET $6 LIMIT $7""",
                *args,
                offset,
                limit,
            )
            total = await conn.fetchval(
                f"SELECT count(*) FROM admin_audit_log WHERE {condition}", *args
            )
        entries = [{**dict(r), "params": json.loads(r["params"])} for r in rows]
        return entries, total
