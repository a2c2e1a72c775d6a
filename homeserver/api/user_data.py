"""Account data and filters: data a user keeps on the server for their clients."""

from __future__ import annotations

from typing import Any

from homeserver.account_data import AccountDataService
from homeserver.api.http import ClientRequest, endpoint
from homeserver.filters import FilterService

# Account data deletion is still an MSC (MSC3391); clients call its prefix.
MSC3391 = ("/_matrix/client/unstable/org.matrix.msc3391",)


class UserDataApi:
    def __init__(self, account_data: AccountDataService, filters: FilterService) -> None:
        self._account_data = account_data
        self._filters = filters

    @endpoint("GET", "/user/{userId}/account_data/{type}")
    async def get_global(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        return await self._account_data.get(req.user.user_id, p["userId"], "", p["type"])

    @endpoint("PUT", "/user/{userId}/account_data/{type}")
    async def put_global(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        await self._account_data.put(req.user.user_id, p["userId"], "", p["type"], req.json())
        return {}

    @endpoint("GET", "/user/{userId}/rooms/{roomId}/account_data/{type}")
    async def get_room(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        return await self._account_data.get(req.user.user_id, p["userId"], p["roomId"], p["type"])

    @endpoint("PUT", "/user/{userId}/rooms/{roomId}/account_data/{type}")
    async def put_room(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        await self._account_data.put(
            req.user.user_id, p["userId"], p["roomId"], p["type"], req.json()
        )
        return {}

    @endpoint("DELETE", "/user/{userId}/account_data/{type}", prefixes=MSC3391)
    async def delete_global(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        await self._account_data.delete(req.user.user_id, p["userId"], "", p["type"])
        return {}

    @endpoint("DELETE", "/user/{userId}/rooms/{roomId}/account_data/{type}", prefixes=MSC3391)
    async def delete_room(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        await self._account_data.delete(req.user.user_id, p["userId"], p["roomId"], p["type"])
        return {}

    @endpoint("POST", "/user/{userId}/filter")
    async def create_filter(self, req: ClientRequest) -> dict[str, Any]:
        filter_id = await self._filters.create(req.user.user_id, req.params["userId"], req.json())
        return {"filter_id": filter_id}

    @endpoint("GET", "/user/{userId}/filter/{filterId}")
    async def get_filter(self, req: ClientRequest) -> dict[str, Any]:
        return await self._filters.get(
            req.user.user_id, req.params["userId"], req.params["filterId"]
        )
