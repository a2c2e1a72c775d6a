"""Third-party invites on the federation listener.

POST /3pid/onbind (PUT in the spec's text): identity servers are not Matrix servers and sign nothing
with X-Matrix; the invites they send are proven by their own signatures,
which the invite service checks. PUT /exchange_third_party_invite/{roomId}:
another server forwards such an invite for a room of ours.
"""

from __future__ import annotations

from typing import Any

from federation.http import FEDERATION_V1, FederationRequest, federation_endpoint
from homeserver.identity.invites import ThirdPartyInvites


class FederationThreepidApi:
    def __init__(self, invites: ThirdPartyInvites) -> None:
        self._invites = invites

    @federation_endpoint("POST", FEDERATION_V1 + "/3pid/onbind", auth=False)
    @federation_endpoint("PUT", FEDERATION_V1 + "/3pid/onbind", auth=False)
    async def on_bind(self, req: FederationRequest) -> dict[str, Any]:
        await self._invites.on_bind(req.json())
        return {}

    @federation_endpoint("PUT", FEDERATION_V1 + "/exchange_third_party_invite/{roomId}")
    async def exchange(self, req: FederationRequest) -> dict[str, Any]:
        await self._invites.on_exchange(req.origin, req.params["roomId"], req.json())
        return {}
