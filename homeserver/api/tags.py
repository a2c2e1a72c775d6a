"""Room tags (/user/{userId}/rooms/{roomId}/tags)."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.tags import TagService


class TagsApi:
    def __init__(self, tags: TagService) -> None:
        self._tags = tags

    @endpoint("GET", "/user/{userId}/rooms/{roomId}/tags")
    async def get_tags(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        return {"tags": await self._tags.get(req.user.user_id, p["userId"], p["roomId"])}

    @endpoint("PUT", "/user/{userId}/rooms/{roomId}/tags/{tag}")
    async def put_tag(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        await self._tags.put(req.user.user_id, p["userId"], p["roomId"], p["tag"], req.json())
        return {}

    @endpoint("DELETE", "/user/{userId}/rooms/{roomId}/tags/{tag}")
    async def delete_tag(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        await self._tags.delete(req.user.user_id, p["userId"], p["roomId"], p["tag"])
        return {}
