"""Third-party identifiers of an account (spec: client-server API, 3PID
management) and the identity server's /3pid/onbind callback."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import CLIENT_PREFIXES, ClientRequest, endpoint
from homeserver.api.params import opt_str, req_str
from homeserver.identity.bindings import ThreepidBindings
from homeserver.identity.client import check_id_server
from homeserver.identity.invites import ThirdPartyInvites

# SyTest and older clients call bind and unbind under the unstable prefix.
_WITH_UNSTABLE = (*CLIENT_PREFIXES, "/_matrix/client/unstable")
ONBIND_PREFIX = ("/_matrix/federation/v1",)


def opt_id_server(body: dict[str, Any]) -> str | None:
    value = opt_str(body, "id_server")
    return None if value is None else check_id_server(value)


class ThreepidsApi:
    def __init__(self, bindings: ThreepidBindings) -> None:
        self._bindings = bindings

    @endpoint("GET", "/account/3pid")
    async def threepids(self, req: ClientRequest) -> dict[str, Any]:
        # This server validates no 3PIDs itself (no email or SMS sending), so
        # none is ever added to an account: bindings live at identity servers.
        return {"threepids": []}

    @endpoint("POST", "/account/3pid/bind", prefixes=_WITH_UNSTABLE)
    async def bind(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        id_server = check_id_server(req_str(body, "id_server"))
        await self._bindings.bind(
            req.user.user_id,
            id_server,
            req_str(body, "id_access_token"),
            req_str(body, "sid"),
            req_str(body, "client_secret"),
        )
        return {}

    @endpoint("POST", "/account/3pid/unbind", prefixes=_WITH_UNSTABLE)
    async def unbind(self, req: ClientRequest) -> dict[str, Any]:
        return await self._unbind(req)

    @endpoint("POST", "/account/3pid/delete", prefixes=_WITH_UNSTABLE)
    async def delete(self, req: ClientRequest) -> dict[str, Any]:
        # No 3PID is ever added to an account here (see above): deleting one
        # is unbinding it.
        return await self._unbind(req)

    async def _unbind(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        medium, address = req_str(body, "medium"), req_str(body, "address")
        result = await self._bindings.unbind(req.user.user_id, medium, address, opt_id_server(body))
        return {"id_server_unbind_result": result}


class ThreepidOnBindApi:
    """POST /_matrix/federation/v1/3pid/onbind, called by identity servers.

    Identity servers reach a homeserver at its client base URL as often as at
    its federation address, so this is served on both listeners.
    """

    def __init__(self, invites: ThirdPartyInvites) -> None:
        self._invites = invites

    @endpoint("POST", "/3pid/onbind", auth=False, prefixes=ONBIND_PREFIX)
    async def on_bind(self, req: ClientRequest) -> dict[str, Any]:
        await self._invites.on_bind(req.json())
        return {}
