"""Binding a user's third-party identifiers on identity servers, and unbinding them.

The identity server does the binding; this server only remembers where each
binding was made, so that unbinding (on /account/3pid/unbind, /delete and at
deactivation) reaches the right servers when the client does not name one.
The answers follow the spec's `id_server_unbind_result`: "success" when
every identity server asked confirmed, "no-support" otherwise.
"""

from __future__ import annotations

import logging
from typing import Final

from homeserver.errors import MatrixError
from homeserver.identity.client import IdentityServerClient
from storage.threepids import ThreepidBindingStore

logger = logging.getLogger(__name__)

SUCCESS: Final = "success"
NO_SUPPORT: Final = "no-support"


class ThreepidBindings:
    def __init__(self, store: ThreepidBindingStore, client: IdentityServerClient) -> None:
        self._store = store
        self._client = client

    async def bind(
        self, user_id: str, id_server: str, id_access_token: str, sid: str, client_secret: str
    ) -> None:
        """Bind the 3PID the identity server validated in session `sid` to the user."""
        medium, address = await self._client.bind(
            id_server, id_access_token, sid=sid, client_secret=client_secret, mxid=user_id
        )
        await self._store.add(user_id, medium, address, id_server)

    async def unbind(self, user_id: str, medium: str, address: str, id_server: str | None) -> str:
        """Unbind one 3PID from `id_server`, or from every server it was
        bound on through us; "no-support" if there was none to ask."""
        servers = (
            [id_server]
            if id_server is not None
            else await self._store.id_servers(user_id, medium, address)
        )
        if not servers:
            return NO_SUPPORT
        result = SUCCESS
        for server in servers:
            unbound = await self._client.unbind(
                server, mxid=user_id, medium=medium, address=address
            )
            # Forgotten either way, as Synapse: the identity server has no
            # binding, or will never remove it on request.
            await self._store.remove(user_id, medium, address, server)
            if not unbound:
                result = NO_SUPPORT
        return result

    async def unbind_all(self, user_id: str) -> str:
        """At deactivation: unbind every 3PID the user bound through us.

        An identity server that cannot be reached does not stop the
        deactivation; the answer is then "no-support".
        """
        result = SUCCESS
        for binding in await self._store.for_user(user_id):
            try:
                outcome = await self.unbind(
                    user_id, binding.medium, binding.address, binding.id_server
                )
            except MatrixError as e:
                logger.warning(
                    "unbinding %s of %s from %s failed: %s",
                    binding.address,
                    user_id,
                    binding.id_server,
                    e.message,
                )
                outcome = NO_SUPPORT
            if outcome != SUCCESS:
                result = NO_SUPPORT
        return result
