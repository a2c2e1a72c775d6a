"""Admin API: reading the audit log. There is deliberately no route that changes it."""

from __future__ import annotations

from typing import Any

from homeserver.api.admin.common import paging, query_int
from homeserver.api.http import ClientRequest, admin_endpoint
from storage.admin_audit import AuditFilter, AuditStore


class AdminAuditApi:
    def __init__(self, audit: AuditStore) -> None:
        self._audit = audit

    @admin_endpoint("GET", "/v1/audit_log")
    async def audit_log(self, req: ClientRequest) -> dict[str, Any]:
        offset, limit, backwards = paging(req)
        if "dir" not in req.query:
            backwards = True
        where = AuditFilter(
            admin_user_id=req.query.get("admin"),
            target=req.query.get("target"),
            action=req.query.get("action"),
            from_ts=query_int(req, "from_ts"),
            to_ts=query_int(req, "to_ts"),
        )
        entries, total = await self._audit.page(
            where, offset=offset, limit=limit, backwards=backwards
        )
        body: dict[str, Any] = {"entries": entries, "total": total}
        if offset + len(entries) < total:
            body["next_token"] = str(offset + len(entries))
        return body
