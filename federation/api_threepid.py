"""POST /_matrix/federation/v1/3pid/onbind on the federation listener.

Identity servers are not Matrix servers and sign nothing with X-Matrix: the
invites they send are proven by their own signatures, which the invite
service checks.
"""

from __future__ import annotations

from typing import Any

from federation.http import FEDERATION_V1, FederationRequest, federation_endpoint
from homeserver.identity.invites import ThirdPartyInvites


class FederationThreepidApi:
    def __init__(self, invites: ThirdPartyInvites) -> None:
        self._invites = invites

    @federation_endpoint("POST", FEDERATION_V1 + "/3pid/onbind", auth=False)
    async def on_bind(self, req: FederationRequest) -> dict[str, Any]:
        await self._invites.on_bind(req.json())
        return {}
