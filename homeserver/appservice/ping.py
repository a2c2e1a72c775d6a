"""`POST /_matrix/client/v1/appservice/{appserviceId}/ping`: can we reach the appservice?

An appservice asks the server to call its `/_matrix/app/v1/ping` so it knows
the server can reach it (mautrix bridges do so at start-up). A success also
tells the delivery of transactions that the appservice is back: it retries at
once instead of waiting for its backoff to end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from homeserver.appservice.client import AppServiceClient
from homeserver.appservice.registration import AppServices
from homeserver.errors import forbidden
from homeserver.requester import Requester

# The delivery's "retry now" for an appservice id (AppServiceDelivery.wake).
Wake = Callable[[str], Awaitable[None] | None]


class AppServicePing:
    def __init__(
        self, appservices: AppServices, client: AppServiceClient, *, wake: Wake | None = None
    ) -> None:
        self._appservices = appservices
        self._client = client
        self._wake = wake

    async def ping(
        self, requester: Requester, appservice_id: str, transaction_id: str | None
    ) -> int:
        """The round trip in milliseconds; the spec's errors otherwise."""
        service = self._appservices.by_id(appservice_id)
        if service is None or requester.app_service_id != service.id:
            raise forbidden("Provided access token is not the appservice's as_token")
        duration_ms = await self._client.ping(service, transaction_id)
        if self._wake is not None:
            woken = self._wake(service.id)
            if woken is not None:
                await woken
        return duration_ms
