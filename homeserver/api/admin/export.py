"""Admin API: data exports as background jobs (homeserver/export/jobs.py).

    POST /_synapse/admin/v1/export/user/{userId}   {"include_redacted": bool} -> {"export_id"}
    POST /_synapse/admin/v1/export/room/{roomId}   {"include_redacted": bool} -> {"export_id"}
    GET  /_synapse/admin/v1/export/{exportId}      -> status, progress, output path

The POSTs are audited by the router, like every admin change.
"""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, admin_endpoint
from homeserver.api.params import opt_bool
from homeserver.errors import invalid_param, not_found
from homeserver.export.exporter import ExportRequest
from homeserver.export.jobs import ExportJobs
from homeserver.identifiers import is_valid_room_id, split_user_id


class AdminExportApi:
    def __init__(self, jobs: ExportJobs, server_name: str) -> None:
        self._jobs = jobs
        self._server_name = server_name

    @admin_endpoint("POST", "/v1/export/user/{userId}", action="export.user")
    async def export_user(self, req: ClientRequest) -> dict[str, Any]:
        user_id = req.params["userId"]
        parts = split_user_id(user_id)
        if parts is None:
            raise invalid_param(f"{user_id!r} is not a user id")
        if parts[1] != self._server_name:
            raise invalid_param("Only local users can be exported")
        include_redacted = opt_bool(req.json(), "include_redacted", False)
        export_id = await self._jobs.begin(
            req.user, ExportRequest("user", user_id, include_redacted)
        )
        return {"export_id": export_id}

    @admin_endpoint("POST", "/v1/export/room/{roomId}", action="export.room")
    async def export_room(self, req: ClientRequest) -> dict[str, Any]:
        room_id = req.params["roomId"]
        if not is_valid_room_id(room_id):
            raise invalid_param(f"{room_id!r} is not a room id")
        include_redacted = opt_bool(req.json(), "include_redacted", False)
        export_id = await self._jobs.begin(
            req.user, ExportRequest("room", room_id, include_redacted)
        )
        return {"export_id": export_id}

    @admin_endpoint("GET", "/v1/export/{exportId}")
    async def status(self, req: ClientRequest) -> dict[str, Any]:
        status = await self._jobs.status(req.params["exportId"])
        if status is None:
            raise not_found("Unknown export")
        return status
