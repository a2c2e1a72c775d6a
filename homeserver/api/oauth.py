"""The OAuth 2.0 API's endpoints: server metadata, dynamic client
registration, authorization, token, revocation and device authorization.

Only the metadata is a Matrix endpoint (Matrix errors); the others are OAuth
endpoints and answer in their RFCs' format. They are mounted only when
`oauth.enabled`; otherwise the metadata answers 404 M_UNRECOGNIZED, which
the spec tells clients means "no OAuth here".
"""

from __future__ import annotations

import base64
import binascii
import html
import logging
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from homeserver.api.http import CLIENT_V1, ClientRequest, endpoint, json_object
from homeserver.errors import MatrixError
from homeserver.oauth.authorization import AuthorizationRequests
from homeserver.oauth.clients import OAuthClients
from homeserver.oauth.device_flow import DeviceAuthorizations
from homeserver.oauth.errors import OAuthError, RedirectError, invalid_request
from homeserver.oauth.id_tokens import IdTokens
from homeserver.oauth.metadata import OAUTH_PREFIX, auth_metadata, issuer_of
from homeserver.oauth.tokens import OAuthTokens

logger = logging.getLogger(__name__)

MSC2965 = ("/_matrix/client/unstable/org.matrix.msc2965",)
OAUTH = (OAUTH_PREFIX,)
# RFC 6749 section 5.1: token responses must not be cached.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_json(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status, headers=_NO_STORE)


def _form(req: ClientRequest) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (RFC 6749 section 3.2);
    a parameter given twice is refused (section 3.1)."""
    content_type = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise invalid_request("The body must be application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(req.body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise invalid_request("The body is not UTF-8") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise invalid_request("Parameters must not contain NUL")
        if key in form:
            raise invalid_request(f"{key} was given more than once")
        form[key] = value
    # Public clients may authenticate as HTTP Basic with an empty password.
    if "client_id" not in form:
        form.update(_basic_client_id(req.headers.get("Authorization")))
    return form


def _basic_client_id(header: str | None) -> dict[str, str]:
    if not header or not header.lower().startswith("basic "):
        return {}
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "Malformed Basic credentials", 401) from None
    return {"client_id": unquote(decoded.partition(":")[0])}


def _error_page(description: str) -> web.Response:
    """RFC 6749 section 4.1.2.1: with no trusted redirect URI, tell the person."""
    text = html.escape(description)
    body = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<title>Sign-in request refused</title></head><body>"
        f"<h1>This sign-in request cannot be completed</h1><p>{text}</p>"
        "<p>Return to the application and try again.</p></body></html>"
    )
    return web.Response(
        status=400,
        text=body,
        content_type="text/html",
        headers={"X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'none'"},
    )


class OAuthMetadataApi:
    """`auth_metadata` and its unstable spellings."""

    def __init__(self, base_url: str, *, registration_open: bool) -> None:
        self._metadata = auth_metadata(base_url, registration_open=registration_open)
        self._issuer = issuer_of(base_url)

    @endpoint("GET", "/auth_metadata", auth=False, prefixes=(*CLIENT_V1, *MSC2965))
    async def metadata(self, req: ClientRequest) -> dict[str, Any]:
        return self._metadata

    @endpoint("GET", "/.well-known/openid-configuration", auth=False, prefixes=("",))
    @endpoint("GET", "/.well-known/oauth-authorization-server", auth=False, prefixes=("",))
    async def issuer_metadata(self, req: ClientRequest) -> dict[str, Any]:
        """The same metadata where generic OAuth and OpenID Connect clients
        look for it under the issuer (RFC 8414, OpenID Connect Discovery);
        oidc-client-ts, under Element Web's sign-in, fetches it from there."""
        return self._metadata

    @endpoint("GET", "/auth_issuer", auth=False, prefixes=MSC2965)
    async def issuer(self, req: ClientRequest) -> dict[str, Any]:
        # MSC2965's first draft, which older Element X and js-sdk versions call.
        return {"issuer": self._issuer}


class OAuthApi:
    def __init__(
        self,
        clients: OAuthClients,
        authorizations: AuthorizationRequests,
        tokens: OAuthTokens,
        devices: DeviceAuthorizations,
        id_tokens: IdTokens,
    ) -> None:
        self._clients = clients
        self._authorizations = authorizations
        self._tokens = tokens
        self._devices = devices
        self._id_tokens = id_tokens

    @endpoint("GET", "/keys.json", auth=False, prefixes=OAUTH)
    async def jwks(self, req: ClientRequest) -> dict[str, Any]:
        return self._id_tokens.jwks()

    @endpoint("POST", "/registration", auth=False, prefixes=OAUTH, ratelimit="registration")
    async def register(self, req: ClientRequest) -> web.StreamResponse:
        try:
            try:
                body = json_object(req.body)
            except MatrixError as e:
                raise invalid_request(e.message) from None
            return _oauth_json(201, await self._clients.register(body))
        except OAuthError as e:
            logger.info("client registration refused: %s", e.description)
            return _oauth_json(e.status, e.to_json())

    @endpoint("GET", "/authorize", auth=False, prefixes=OAUTH)
    async def authorize(self, req: ClientRequest) -> web.StreamResponse:
        try:
            outcome = await self._authorizations.start(req.query)
        except RedirectError as e:
            return _error_page(e.description)
        return web.Response(status=302, headers={"Location": outcome.location})

    @endpoint("POST", "/token", auth=False, prefixes=OAUTH, ratelimit="login")
    async def token(self, req: ClientRequest) -> web.StreamResponse:
        try:
            return _oauth_json(200, await self._tokens.token(_form(req), ip=req.ip))
        except OAuthError as e:
            return _oauth_json(e.status, e.to_json())

    @endpoint("POST", "/revoke", auth=False, prefixes=OAUTH)
    async def revoke(self, req: ClientRequest) -> web.StreamResponse:
        try:
            await self._tokens.revoke(_form(req))
        except OAuthError as e:
            return _oauth_json(e.status, e.to_json())
        return _oauth_json(200, {})

    @endpoint("POST", "/device_authorization", auth=False, prefixes=OAUTH, ratelimit="login")
    async def device_authorization(self, req: ClientRequest) -> web.StreamResponse:
        try:
            form = _form(req)
            return _oauth_json(
                200, await self._devices.start(form.get("client_id"), form.get("scope"))
            )
        except OAuthError as e:
            return _oauth_json(e.status, e.to_json())
