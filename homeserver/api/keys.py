"""End-to-end encryption keys: upload, query, claim, changes, cross-signing."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import CLIENT_PREFIXES, ClientRequest, endpoint
from homeserver.e2e.cross_signing import CrossSigningService
from homeserver.e2e.keys import KeyService
from homeserver.errors import missing_param
from homeserver.sync.token import SyncToken
from homeserver.uia import PASSWORD, UiaService

# Element's legacy crypto (and SyTest) still upload cross-signing keys and
# signatures under the prefix they had before Matrix 1.1.
_WITH_UNSTABLE = (*CLIENT_PREFIXES, "/_matrix/client/unstable")


class E2eKeysApi:
    def __init__(
        self, keys: KeyService, cross_signing: CrossSigningService, uia: UiaService
    ) -> None:
        self._keys = keys
        self._cross_signing = cross_signing
        self._uia = uia

    @endpoint("POST", "/keys/upload", guest_ok=True)
    async def upload(self, req: ClientRequest) -> dict[str, Any]:
        return await self._keys.upload(req.user, req.json())

    @endpoint("POST", "/keys/query", guest_ok=True, cancellable=True)
    async def query(self, req: ClientRequest) -> dict[str, Any]:
        return await self._keys.query(req.user, req.json())

    @endpoint("POST", "/keys/claim", guest_ok=True)
    async def claim(self, req: ClientRequest) -> dict[str, Any]:
        return await self._keys.claim(req.user, req.json())

    @endpoint("GET", "/keys/changes", guest_ok=True)
    async def changes(self, req: ClientRequest) -> dict[str, Any]:
        since, upto = req.query.get("from"), req.query.get("to")
        if since is None or upto is None:
            raise missing_param("'from' and 'to' are required")
        changes = await self._keys.changes(req.user, SyncToken.parse(since), SyncToken.parse(upto))
        return {"changed": changes.changed, "left": changes.left}

    @endpoint("POST", "/keys/device_signing/upload", prefixes=_WITH_UNSTABLE)
    async def upload_signing_keys(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        user_id = req.user.user_id
        # As Synapse (MSC4190): appservices replace their users' keys without UIA.
        needs_uia = req.user.app_service_id is None
        if needs_uia and await self._cross_signing.needs_authentication(user_id, body):
            await self._uia.authenticate(
                body.get("auth"), [[PASSWORD]], method=req.method, uri=req.path, user_id=user_id
            )
        await self._cross_signing.upload_keys(user_id, body)
        return {}

    @endpoint("POST", "/keys/signatures/upload", prefixes=_WITH_UNSTABLE, guest_ok=True)
    async def upload_signatures(self, req: ClientRequest) -> dict[str, Any]:
        return await self._cross_signing.upload_signatures(req.user.user_id, req.json())
