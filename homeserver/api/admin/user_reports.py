"""Admin API: user reports (Synapse's /_synapse/admin/v1/user_reports)."""

from __future__ import annotations

from typing import Any

from homeserver.admin.user_reports import AdminUserReports
from homeserver.api.admin.common import paging
from homeserver.api.admin.reports import report_id
from homeserver.api.http import ClientRequest, admin_endpoint


class AdminUserReportsApi:
    def __init__(self, reports: AdminUserReports) -> None:
        self._reports = reports

    @admin_endpoint("GET", "/v1/user_reports")
    async def list_reports(self, req: ClientRequest) -> dict[str, Any]:
        offset, limit, backwards = paging(req)
        return await self._reports.list_reports(
            user_id=req.query.get("user_id"),
            target_user_id=req.query.get("target_user_id"),
            # Newest first unless asked otherwise, as Synapse.
            backwards=backwards or "dir" not in req.query,
            offset=offset,
            limit=limit,
        )

    @admin_endpoint("GET", "/v1/user_reports/{reportId}")
    async def get(self, req: ClientRequest) -> dict[str, Any]:
        return await self._reports.get(report_id(req))

    @admin_endpoint("DELETE", "/v1/user_reports/{reportId}", action="user_report.delete")
    async def delete(self, req: ClientRequest) -> dict[str, Any]:
        await self._reports.delete(report_id(req))
        return {}
