"""Call setup: TURN credentials, and the third-party network lookups of bridges.

No application services (bridges) are registered with this server, so there
are no third-party protocols: the protocol list is empty, a named protocol is
not found, and user and location lookups find nothing, as Synapse answers
when it has no bridges.
"""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.errors import not_found
from homeserver.turn import TurnService


class VoipApi:
    def __init__(self, turn: TurnService) -> None:
        self._turn = turn

    @endpoint("GET", "/voip/turnServer", guest_ok=True)
    async def turn_server(self, req: ClientRequest) -> dict[str, Any]:
        return self._turn.credentials(req.user)


class ThirdPartyApi:
    @endpoint("GET", "/thirdparty/protocols", guest_ok=True)
    async def protocols(self, req: ClientRequest) -> dict[str, Any]:
        return {}

    @endpoint("GET", "/thirdparty/protocol/{protocol}", guest_ok=True)
    async def protocol(self, req: ClientRequest) -> dict[str, Any]:
        raise not_found(f"Unknown protocol {req.params['protocol']!r}")

    @endpoint("GET", "/thirdparty/location", guest_ok=True)
    @endpoint("GET", "/thirdparty/location/{protocol}", guest_ok=True)
    @endpoint("GET", "/thirdparty/user", guest_ok=True)
    @endpoint("GET", "/thirdparty/user/{protocol}", guest_ok=True)
    async def lookup(self, req: ClientRequest) -> tuple[int, list[Any]]:
        return 200, []
