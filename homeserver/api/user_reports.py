"""POST /users/{userId}/report (client-server API v1.14)."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.params import req_str
from homeserver.user_reports import UserReports


class UserReportsApi:
    def __init__(self, reports: UserReports) -> None:
        self._reports = reports

    @endpoint("POST", "/users/{userId}/report", prefixes=("/_matrix/client/v3",))
    async def report_user(self, req: ClientRequest) -> dict[str, Any]:
        reason = req_str(req.json(), "reason")
        await self._reports.report(req.user, req.params["userId"], reason)
        return {}
