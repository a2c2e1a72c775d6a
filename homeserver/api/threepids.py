"""Third-party identifiers of an account (spec: client-server API, 3PID
management) and the identity server's /3pid/onbind callback."""

from __future__ import annotations

from typing import Any

from homeserver.accounts.threepids import AccountThreepids
from homeserver.api.http import CLIENT_PREFIXES, ClientRequest, endpoint
from homeserver.api.params import opt_str, req_str
from homeserver.email.validation import EmailValidation
from homeserver.errors import MatrixError
from homeserver.identity.bindings import ThreepidBindings
from homeserver.identity.client import check_id_server
from homeserver.identity.invites import ThirdPartyInvites
from homeserver.uia import PASSWORD, UiaService

# SyTest and older clients call bind and unbind under the unstable prefix.
_WITH_UNSTABLE = (*CLIENT_PREFIXES, "/_matrix/client/unstable")
ONBIND_PREFIX = ("/_matrix/federation/v1",)


def opt_id_server(body: dict[str, Any]) -> str | None:
    value = opt_str(body, "id_server")
    return None if value is None else check_id_server(value)


class ThreepidsApi:
    def __init__(
        self,
        bindings: ThreepidBindings,
        account_threepids: AccountThreepids,
        uia: UiaService,
        emails: EmailValidation | None,
    ) -> None:
        self._bindings = bindings
        self._account = account_threepids
        self._uia = uia
        # The addresses this server validates (None: no email configured).
        self._emails = emails

    @endpoint("GET", "/account/3pid")
    async def threepids(self, req: ClientRequest) -> dict[str, Any]:
        """The addresses this server validated and added to the account (the
        bindings at identity servers are theirs to list)."""
        return {
            "threepids": [
                {
                    "medium": t.medium,
                    "address": t.address,
                    "validated_at": t.validated_at,
                    "added_at": t.added_at,
                }
                for t in await self._account.list(req.user.user_id)
            ]
        }

    @endpoint("POST", "/account/3pid/add")
    async def add(self, req: ClientRequest) -> dict[str, Any]:
        """Add an address validated through /account/3pid/email/requestToken,
        after the user proved themselves again (UIA, as the spec requires)."""
        body = req.json()
        sid, client_secret = req_str(body, "sid"), req_str(body, "client_secret")
        if self._emails is None:
            raise MatrixError(400, "M_THREEPID_MEDIUM_NOT_SUPPORTED", "No email is configured")
        await self._uia.authenticate(
            body.get("auth"),
            [[PASSWORD]],
            method=req.method,
            uri=req.path,
            user_id=req.user.user_id,
        )
        validated = await self._emails.validated(sid, client_secret)
        await self._account.add(req.user.user_id, validated)
        return {}

    @endpoint("POST", "/account/3pid")
    async def add_deprecated(self, req: ClientRequest) -> dict[str, Any]:
        """The deprecated form of /add (spec v1.0): `three_pid_creds` name a
        session this server validated, no UIA (as Synapse still serves it);
        with `bind`, the address is bound at the identity server named too."""
        body = req.json()
        creds = body.get("three_pid_creds", body.get("threePidCreds"))
        if not isinstance(creds, dict):
            raise MatrixError(400, "M_MISSING_PARAM", "'three_pid_creds' must be an object")
        if self._emails is None:
            raise MatrixError(400, "M_THREEPID_MEDIUM_NOT_SUPPORTED", "No email is configured")
        sid, client_secret = req_str(creds, "sid"), req_str(creds, "client_secret")
        bind = body.get("bind", False)
        if not isinstance(bind, bool):
            raise MatrixError(400, "M_INVALID_PARAM", "'bind' must be a boolean")
        id_server = opt_id_server(creds) if bind else None
        access_token = opt_str(creds, "id_access_token") if bind else None
        if bind and (id_server is None or access_token is None):
            raise MatrixError(
                400, "M_MISSING_PARAM", "Binding needs 'id_server' and 'id_access_token'"
            )
        validated = await self._emails.validated(sid, client_secret)
        await self._account.add(req.user.user_id, validated)
        if id_server is not None and access_token is not None:
            await self._bindings.bind(req.user.user_id, id_server, access_token, sid, client_secret)
        return {}

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
        """Remove the address from the account, and unbind it from identity servers."""
        body = req.json()
        await self._account.remove(
            req.user.user_id, req_str(body, "medium"), req_str(body, "address")
        )
        return await self._unbind(req)

    async def _unbind(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        medium, address = req_str(body, "medium"), req_str(body, "address")
        result = await self._bindings.unbind(req.user.user_id, medium, address, opt_id_server(body))
        return {"id_server_unbind_result": result}


class ThreepidOnBindApi:
    """/_matrix/federation/v1/3pid/onbind, called by identity servers: POST as
    Sydent and Synapse have it, PUT as the spec writes it.

    Identity servers reach a homeserver at its client base URL as often as at
    its federation address, so this is served on both listeners.
    """

    def __init__(self, invites: ThirdPartyInvites) -> None:
        self._invites = invites

    @endpoint("POST", "/3pid/onbind", auth=False, prefixes=ONBIND_PREFIX)
    @endpoint("PUT", "/3pid/onbind", auth=False, prefixes=ONBIND_PREFIX)
    async def on_bind(self, req: ClientRequest) -> dict[str, Any]:
        await self._invites.on_bind(req.json())
        return {}
