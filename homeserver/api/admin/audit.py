"""Admin API: reading the audit log. There is deliberately no route that changes it."""

from __future__ import annotations

from typing import Any

from homeserver.admin.audit import AuditLog
from homeserver.api.admin.common import paging, query_int
from homeserver.api.http import ClientRequest, admin_endpoint
from storage.admin_audit import AuditFilter


class AdminAuditApi:
    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    @admin_endpoint("GET", "/v1/audit_log")
    async def audit_log(self, req: ClientRequest) -> dict[str, Any]:
        offset, limit, backwards = paging(req)
        where = AuditFilter(
            admin_user_id=req.query.get("admin"),
            target=req.query.get("target"),
            action=req.query.get("action"),
            from_ts=query_int(req, "from_ts"),
            to_ts=query_int(req, "to_ts"),
        )
        # Newest first unless asked otherwise.
        return await self._audit.page(
            where, offset=offset, limit=limit, backwards=backwards or "dir" not in req.query
        )
