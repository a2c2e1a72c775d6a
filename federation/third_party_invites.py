"""Forwarding a third-party invite to the inviter's server
(PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId})."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from federation.transport import FederationClient, FederationError
from homeserver.errors import MatrixError

V1 = "/_matrix/federation/v1"


class InviteExchange:
    """Implements homeserver.identity.invites.InviteForwarder.

    The federation client is made with the federation listener, after the
    invite service: it is reached through a callable.
    """

    def __init__(self, client: Callable[[], FederationClient]) -> None:
        self._client = client

    async def exchange(self, destination: str, room_id: str, event: dict[str, Any]) -> None:
        path = f"{V1}/exchange_third_party_invite/{quote(room_id, safe='')}"
        try:
            await self._client().put_json(destination, path, event)
        except FederationError as e:
            if e.status is not None and 400 <= e.status < 500:
                raise MatrixError(e.status, e.errcode or "M_UNKNOWN", str(e)) from None
            raise MatrixError(502, "M_UNKNOWN", f"{destination} did not answer: {e}") from None
