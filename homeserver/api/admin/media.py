"""Admin API: media quarantine, protection, deletion and users' uploads."""

from __future__ import annotations

from typing import Any

from homeserver.admin.media import AdminMedia
from homeserver.api.admin.common import paging, query_int
from homeserver.api.http import ClientRequest, admin_endpoint
from homeserver.errors import invalid_param, missing_param


class AdminMediaApi:
    def __init__(self, media: AdminMedia) -> None:
        self._media = media

    @admin_endpoint(
        "POST", "/v1/media/quarantine/{serverName}/{mediaId}", action="media.quarantine"
    )
    async def quarantine(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        await self._media.quarantine(req.user.user_id, p["serverName"], p["mediaId"])
        return {}

    @admin_endpoint(
        "POST", "/v1/media/unquarantine/{serverName}/{mediaId}", action="media.unquarantine"
    )
    async def unquarantine(self, req: ClientRequest) -> dict[str, Any]:
        await self._media.unquarantine(req.params["serverName"], req.params["mediaId"])
        return {}

    @admin_endpoint("POST", "/v1/room/{roomId}/media/quarantine", action="media.quarantine_room")
    async def quarantine_room(self, req: ClientRequest) -> dict[str, Any]:
        count = await self._media.quarantine_room(req.user.user_id, req.params["roomId"])
        return {"num_quarantined": count}

    @admin_endpoint("GET", "/v1/room/{roomId}/media")
    async def room_media(self, req: ClientRequest) -> dict[str, Any]:
        return await self._media.room_media(req.params["roomId"])

    @admin_endpoint("POST", "/v1/user/{userId}/media/quarantine", action="media.quarantine_user")
    async def quarantine_user(self, req: ClientRequest) -> dict[str, Any]:
        count = await self._media.quarantine_user(req.user.user_id, req.params["userId"])
        return {"num_quarantined": count}

    @admin_endpoint("POST", "/v1/media/protect/{mediaId}", action="media.protect")
    async def protect(self, req: ClientRequest) -> dict[str, Any]:
        await self._media.protect(req.params["mediaId"], True)
        return {}

    @admin_endpoint("POST", "/v1/media/unprotect/{mediaId}", action="media.unprotect")
    async def unprotect(self, req: ClientRequest) -> dict[str, Any]:
        await self._media.protect(req.params["mediaId"], False)
        return {}

    @admin_endpoint("DELETE", "/v1/media/{serverName}/{mediaId}", action="media.delete")
    async def delete(self, req: ClientRequest) -> dict[str, Any]:
        return await self._media.delete(req.params["serverName"], req.params["mediaId"])

    @admin_endpoint("POST", "/v1/media/delete", action="media.delete_old")
    async def delete_old(self, req: ClientRequest) -> dict[str, Any]:
        before_ts = query_int(req, "before_ts")
        if before_ts is None:
            raise missing_param("Missing integer query parameter 'before_ts'")
        size_gt = query_int(req, "size_gt", 0)
        assert size_gt is not None
        if before_ts < 0 or size_gt < 0:
            raise invalid_param("before_ts and size_gt must be non-negative")
        return await self._media.delete_old(
            before_ts=before_ts,
            size_gt=size_gt,
            keep_profiles=req.query_bool("keep_profiles", True),
        )

    @admin_endpoint("GET", "/v1/users/{userId}/media")
    async def user_media(self, req: ClientRequest) -> dict[str, Any]:
        offset, limit, _ = paging(req)
        return await self._media.user_media(req.params["userId"], offset=offset, limit=limit)

    @admin_endpoint("DELETE", "/v1/users/{userId}/media", action="media.delete_user")
    async def delete_user_media(self, req: ClientRequest) -> dict[str, Any]:
        offset, limit, _ = paging(req)
        return await self._media.delete_user_media(req.params["userId"], offset=offset, limit=limit)
