"""Dynamic client registration (RFC 7591) with the Matrix spec's rules.

The spec (client-server API, "Client registration") narrows RFC 7591 so that
a registration cannot impersonate another client's web site:
- `client_uri` is required, https, without user or password;
- `logo_uri`, `policy_uri` and `tos_uri` (and their localised `#lang`
  variants) are https on the host of `client_uri` or a subdomain of it;
- web clients' `redirect_uris` are https on that host or a subdomain;
- native clients' are a private-use scheme that is the reversed host of
  `client_uri` (or of a subdomain), followed by a single slash, or the http
  loopback interface (`localhost`, `127.0.0.1`, `[::1]`), whose port is
  not part of the match (RFC 8252 section 7.3);
- clients are public: `token_endpoint_auth_method` is `none`.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import SplitResult, urlsplit

import attrs

from homeserver.oauth.errors import OAuthError
from storage.oauth_clients import OAuthClientStore

AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = (AUTHORIZATION_CODE, REFRESH_TOKEN, DEVICE_CODE)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_LOCALISABLE = ("client_name", "logo_uri", "client_uri", "policy_uri", "tos_uri")
_MAX_STRING = 2048
_MAX_REDIRECT_URIS = 20


def _invalid_metadata(description: str) -> OAuthError:
    return OAuthError("invalid_client_metadata", description)


def _invalid_redirect(description: str) -> OAuthError:
    return OAuthError("invalid_redirect_uri", description)


def _host_within(host: str | None, parent: str) -> bool:
    return host is not None and (host == parent or host.endswith("." + parent))


def _https_url(value: Any, name: str) -> SplitResult:
    """`value` split, if it is an https URL without user, password or fragment."""
    if not isinstance(value, str) or len(value) > _MAX_STRING:
        raise _invalid_metadata(f"{name} must be a URL")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError:
        raise _invalid_metadata(f"{name} is not a valid URL") from None
    if parts.scheme != "https" or not parts.hostname:
        raise _invalid_metadata(f"{name} must be an https URL")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise _invalid_metadata(f"{name} must not have a user, password or fragment")
    return parts


def _check_redirect_uri(uri: Any, application_type: str, client_host: str) -> None:
    if not isinstance(uri, str) or len(uri) > _MAX_STRING or any(ord(c) < 0x21 for c in uri):
        raise _invalid_redirect("each redirect URI must be a URI without spaces")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018
    except ValueError:
        raise _invalid_redirect(f"{uri!r} is not a valid URI") from None
    if parts.fragment or parts.username is not None or parts.password is not None:
        raise _invalid_redirect(f"{uri!r} must not have a fragment, user or password")
    if application_type == "web":
        if parts.scheme != "https" or not _host_within(parts.hostname, client_host):
            raise _invalid_redirect(f"{uri!r} must be https on the host of client_uri")
        return
    if parts.scheme == "http":
        if parts.hostname not in LOOPBACK_HOSTS:
            raise _invalid_redirect(f"{uri!r}: native http redirects must be loopback")
        return
    reversed_host = ".".join(reversed(client_host.split(".")))
    scheme = parts.scheme
    if not (scheme == reversed_host or scheme.startswith(reversed_host + ".")):
        raise _invalid_redirect(f"{uri!r} must use the scheme {reversed_host!r} (client_uri)")
    if parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        raise _invalid_redirect(f"{uri!r} must be of the form {reversed_host}:/path")


def validate_metadata(body: dict[str, Any]) -> dict[str, Any]:
    """The metadata to store and echo, or an RFC 7591 error."""
    application_type = body.get("application_type", "web")
    if application_type not in ("web", "native"):
        raise _invalid_metadata("application_type must be 'web' or 'native'")
    if "client_uri" not in body:
        raise _invalid_metadata("client_uri is required")
    client_host = _https_url(body["client_uri"], "client_uri").hostname
    metadata: dict[str, Any] = {"application_type": application_type}
    for key, value in body.items():
        base, _, lang = key.partition("#")
        if base not in _LOCALISABLE:
            continue
        if lang and not all(part.isalnum() for part in lang.split("-")):
            raise _invalid_metadata(f"{key}: invalid language tag")
        if base == "client_name":
            if not isinstance(value, str) or not value or len(value) > 256:
                raise _invalid_metadata(f"{key} must be a non-empty string")
        else:
            parts = _https_url(value, key)
            if not _host_within(parts.hostname, client_host):
                raise _invalid_metadata(f"{key} must be on the host of client_uri")
        metadata[key] = value
    redirect_uris = body.get("redirect_uris", [])
    if not isinstance(redirect_uris, list) or len(redirect_uris) > _MAX_REDIRECT_URIS:
        raise _invalid_redirect("redirect_uris must be a list")
    for uri in redirect_uris:
        _check_redirect_uri(uri, application_type, client_host)
    grant_types = body.get("grant_types", [AUTHORIZATION_CODE])
    if (
        not isinstance(grant_types, list)
        or not grant_types
        or any(g not in GRANT_TYPES for g in grant_types)
    ):
        raise _invalid_metadata(f"grant_types may only hold {', '.join(GRANT_TYPES)}")
    if AUTHORIZATION_CODE in grant_types and not redirect_uris:
        raise _invalid_redirect("the authorization_code grant needs redirect_uris")
    response_types = body.get(
        "response_types", ["code"] if AUTHORIZATION_CODE in grant_types else []
    )
    if not isinstance(response_types, list) or any(r != "code" for r in response_types):
        raise _invalid_metadata("response_types may only hold 'code'")
    if body.get("token_endpoint_auth_method", "none") != "none":
        raise _invalid_metadata(
            "only public clients (token_endpoint_auth_method none) are supported"
        )
    contacts = body.get("contacts")
    if contacts is not None:
        if not isinstance(contacts, list) or not all(isinstance(c, str) for c in contacts):
            raise _invalid_metadata("contacts must be a list of strings")
        metadata["contacts"] = contacts
    metadata.update(
        redirect_uris=redirect_uris,
        grant_types=grant_types,
        response_types=response_types,
        token_endpoint_auth_method="none",
    )
    return metadata


def redirect_uri_matches(registered: list[str], uri: str) -> bool:
    """Exact match, except that the port of a loopback http URI is ignored
    (RFC 8252 section 7.3, which the spec adopts for native clients)."""
    if uri in registered:
        return True
    try:
        parts = urlsplit(uri)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
            return False
        parts.port  # noqa: B018
    except ValueError:
        return False
    for candidate in registered:
        other = urlsplit(candidate)
        if (
            other.scheme == "http"
            and other.hostname == parts.hostname
            and (other.path, other.query) == (parts.path, parts.query)
        ):
            return True
    return False


@attrs.frozen
class OAuthClient:
    client_id: str
    metadata: dict[str, Any]

    @property
    def redirect_uris(self) -> list[str]:
        return list(self.metadata.get("redirect_uris", []))

    @property
    def grant_types(self) -> list[str]:
        return list(self.metadata.get("grant_types", []))

    @property
    def name(self) -> str | None:
        return self.metadata.get("client_name")


class OAuthClients:
    def __init__(self, store: OAuthClientStore) -> None:
        self._store = store

    async def register(self, body: dict[str, Any]) -> dict[str, Any]:
        """RFC 7591 section 3.2.1's response: the client id and its metadata."""
        metadata = validate_metadata(body)
        client_id = secrets.token_urlsafe(16)
        await self._store.add(client_id, metadata)
        return {"client_id": client_id, "client_id_issued_at": int(time.time()), **metadata}

    async def get(self, client_id: str | None) -> OAuthClient | None:
        if not client_id or len(client_id) > 64:
            return None
        metadata = await self._store.get(client_id)
        return OAuthClient(client_id, metadata) if metadata is not None else None
