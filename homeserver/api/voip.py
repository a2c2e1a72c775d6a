"""Call setup: TURN credentials."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.turn import TurnService


class VoipApi:
    def __init__(self, turn: TurnService) -> None:
        self._turn = turn

    @endpoint("GET", "/voip/turnServer", guest_ok=True)
    async def turn_server(self, req: ClientRequest) -> dict[str, Any]:
        return self._turn.credentials(req.user)
