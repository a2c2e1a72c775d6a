"""/.well-known/matrix/support (spec v1.10): who runs this server, for clients to show."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.config import SupportConfig
from homeserver.errors import MatrixError


class SupportApi:
    def __init__(self, support: SupportConfig) -> None:
        self._support = support

    @endpoint("GET", "/.well-known/matrix/support", auth=False, prefixes=("",))
    async def support(self, req: ClientRequest) -> dict[str, Any]:
        # The spec's answer when the deployment gave no support information.
        if not self._support.contacts and self._support.support_page is None:
            raise MatrixError(404, "M_NOT_FOUND", "No support information is configured")
        body: dict[str, Any] = {}
        if self._support.contacts:
            body["contacts"] = [
                {
                    key: value
                    for key, value in (
                        ("role", contact.role),
                        ("matrix_id", contact.matrix_id),
                        ("email_address", contact.email_address),
                    )
                    if value is not None
                }
                for contact in self._support.contacts
            ]
        if self._support.support_page is not None:
            body["support_page"] = self._support.support_page
        return body
