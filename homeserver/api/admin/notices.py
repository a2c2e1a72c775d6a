"""Admin API: server notices."""

from __future__ import annotations

from typing import Any

from homeserver.admin.notices import ServerNotices
from homeserver.api.http import ClientRequest, admin_endpoint
from homeserver.api.params import opt_str, req_str
from homeserver.errors import bad_json, missing_param


class AdminNoticesApi:
    def __init__(self, notices: ServerNotices) -> None:
        self._notices = notices

    @admin_endpoint("POST", "/v1/send_server_notice", action="notice.send")
    @admin_endpoint("PUT", "/v1/send_server_notice/{txnId}", action="notice.send")
    async def send(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        user_id = req_str(body, "user_id")
        if "content" not in body:
            raise missing_param("'content' is required")
        content = body["content"]
        if not isinstance(content, dict):
            raise bad_json("'content' must be an object")
        event_id = await self._notices.send(
            user_id,
            opt_str(body, "type") or "m.room.message",
            content,
            opt_str(body, "state_key"),
        )
        return {"event_id": event_id}
