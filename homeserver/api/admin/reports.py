"""Admin API: event reports."""

from __future__ import annotations

from typing import Any

from homeserver.admin.reports import AdminReports
from homeserver.api.admin.common import paging
from homeserver.api.http import ClientRequest, admin_endpoint
from homeserver.errors import invalid_param


def report_id(req: ClientRequest) -> int:
    value = req.params["reportId"]
    if not value.isdigit() or len(value) > 18:
        raise invalid_param(
            "The report_id parameter must be a string representing a positive integer."
        )
    return int(value)


class AdminReportsApi:
    def __init__(self, reports: AdminReports) -> None:
        self._reports = reports

    @admin_endpoint("GET", "/v1/event_reports")
    async def list_reports(self, req: ClientRequest) -> dict[str, Any]:
        offset, limit, backwards = paging(req)
        return await self._reports.list_reports(
            room_id=req.query.get("room_id"),
            user_id=req.query.get("user_id"),
            # Newest first unless asked otherwise, as Synapse.
            backwards=backwards or "dir" not in req.query,
            offset=offset,
            limit=limit,
        )

    @admin_endpoint("GET", "/v1/event_reports/{reportId}")
    async def get(self, req: ClientRequest) -> dict[str, Any]:
        return await self._reports.get(report_id(req))

    @admin_endpoint("DELETE", "/v1/event_reports/{reportId}", action="report.delete")
    async def delete(self, req: ClientRequest) -> dict[str, Any]:
        await self._reports.delete(report_id(req))
        return {}
