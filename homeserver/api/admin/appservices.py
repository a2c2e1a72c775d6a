"""Admin API: the registered application services and their delivery queues
(how many events each has yet to acknowledge, when it last answered 2xx)."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, admin_endpoint
from homeserver.appservice.delivery.service import AppServiceDelivery
from homeserver.errors import not_found


class AdminAppServicesApi:
    def __init__(self, delivery: AppServiceDelivery) -> None:
        self._delivery = delivery

    @admin_endpoint("GET", "/v1/appservices")
    async def list(self, req: ClientRequest) -> dict[str, Any]:
        statuses = await self._delivery.statuses()
        return {"appservices": [s.to_json() for s in statuses], "total": len(statuses)}

    @admin_endpoint("GET", "/v1/appservices/{appserviceId}")
    async def get(self, req: ClientRequest) -> dict[str, Any]:
        wanted = req.params["appserviceId"]
        for status in await self._delivery.statuses():
            if status.id == wanted:
                return status.to_json()
        raise not_found("Unknown appservice")
