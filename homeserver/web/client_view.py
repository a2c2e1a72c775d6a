"""How an OAuth client and what it asks for are shown to a person.

Client metadata comes from dynamic registration, that is from anyone: the
name is text (escaped by the templates), and only https URLs become a link
or an image, so a `javascript:` or `data:` URI never reaches a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import attrs

from homeserver.web.grants_protocol import ClientInfo

_API_SCOPES = ("urn:matrix:client:api:*", "urn:matrix:org.matrix.msc2967.client:api:*")
_DEVICE_PREFIXES = ("urn:matrix:client:device:", "urn:matrix:org.matrix.msc2967.client:device:")
_MAX_NAME = 100


@attrs.frozen
class ClientView:
    name: str
    uri: str | None
    logo_uri: str | None


def _https(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return url if parts.scheme == "https" and parts.netloc else None


def client_view(client: ClientInfo) -> ClientView:
    safe_uri = _https(client.client_uri)
    shown = (client.name or "").strip()[:_MAX_NAME]
    if not shown:
        shown = urlsplit(safe_uri).hostname or "An application" if safe_uri else "An application"
    return ClientView(shown, safe_uri, _https(client.logo_uri))


def describe_scopes(scopes: Sequence[str]) -> list[str]:
    """One plain sentence per thing a client asks for, in the order asked."""
    asks: list[str] = []
    for scope in scopes:
        if scope in _API_SCOPES:
            asks.append("Access your account: read and send messages, and act as you")
        elif scope.startswith(_DEVICE_PREFIXES):
            device_id = scope.rpartition(":")[2]
            asks.append(f"Sign in as a new device ({device_id})")
        elif scope == "openid":
            asks.append("See your Matrix user ID")
        else:
            asks.append(f"Use the permission “{scope}”")
    return asks
