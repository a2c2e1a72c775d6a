"""Reading the admin audit log. Entries are written by AdminGate (homeserver/admin/gate.py)
and never changed: there is no method here, or anywhere, that would."""

from __future__ import annotations

from typing import Any

from storage.admin_audit import AuditFilter, AuditStore


class AuditLog:
    def __init__(self, store: AuditStore) -> None:
        self._store = store

    async def page(
        self, where: AuditFilter, *, offset: int, limit: int, backwards: bool
    ) -> dict[str, Any]:
        entries, total = await self._store.page(
            where, offset=offset, limit=limit, backwards=backwards
        )
        body: dict[str, Any] = {"entries": entries, "total": total}
        if offset + len(entries) < total:
            body["next_token"] = str(offset + len(entries))
        return body
