"""The authorization endpoint (RFC 6749 section 4.1.1 with PKCE and the
spec's rules): validate the request, keep it pending, and send the browser
to the consent page, where a signed-in person approves or denies it
(homeserver/oauth/grants.py).

RFC 6749 section 4.1.2.1 decides how a bad request is answered: as long as
the client or its redirect URI cannot be trusted, the browser gets an error
page (`RedirectError`); after that, the error goes back to the client on its
redirect URI.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping

import attrs

from homeserver.oauth.clients import AUTHORIZATION_CODE, OAuthClients, redirect_uri_matches
from homeserver.oauth.errors import RedirectError
from homeserver.oauth.pkce import valid_challenge
from homeserver.oauth.redirects import RESPONSE_MODES, redirect_url
from homeserver.oauth.scopes import ScopeError, parse_scope
from storage.database import now_ms
from storage.oauth_grants import AuthorizationRecord, OAuthGrantStore

logger = logging.getLogger(__name__)

CONSENT_PATH = "/_homeserver/web/consent/"
# How long a person has to sign in and approve, and how long a code lives.
AUTHORIZATION_LIFETIME_MS = 15 * 60 * 1000
CODE_LIFETIME_MS = 2 * 60 * 1000
# Prompt values accepted: `create` (MSC4254's registration) and OpenID
# Connect's `login`/`consent`, which this server always does anyway.
_PROMPTS = ("create", "login", "consent")
_MAX_STATE = 2048


@attrs.frozen
class AuthorizationOutcome:
    """Where to send the browser: the consent page or back to the client with an error."""

    location: str


class AuthorizationRequests:
    def __init__(
        self, clients: OAuthClients, store: OAuthGrantStore, *, registration_open: bool
    ) -> None:
        self._clients = clients
        self._store = store
        self._registration_open = registration_open

    async def start(self, query: Mapping[str, str]) -> AuthorizationOutcome:
        """Validate an authorization request; raise RedirectError while the
        redirect URI is not known to be the client's."""
        client = await self._clients.get(query.get("client_id"))
        if client is None:
            logger.info("authorization request for unknown client %r", query.get("client_id"))
            raise RedirectError("Unknown client")
        redirect_uri = query.get("redirect_uri")
        if redirect_uri is None or not redirect_uri_matches(client.redirect_uris, redirect_uri):
            logger.warning(
                "authorization request of client %s with unregistered redirect_uri %r",
                client.client_id,
                redirect_uri,
            )
            raise RedirectError("The redirect URI is not registered for this client")
        state = query.get("state")
        response_mode = query.get("response_mode", "query")

        def back(error: str, description: str) -> AuthorizationOutcome:
            logger.info("authorization request of %s refused: %s", client.client_id, description)
            mode = response_mode if response_mode in RESPONSE_MODES else "query"
            params = {"error": error, "error_description": description, "state": state}
            return AuthorizationOutcome(redirect_url(redirect_uri, mode, params))

        if response_mode not in RESPONSE_MODES:
            return back("invalid_request", "response_mode must be query or fragment")
        nonce = query.get("nonce")
        if any(v is not None and len(v) > _MAX_STATE for v in (state, nonce)):
            return back("invalid_request", "state or nonce is too long")
        if query.get("response_type") != "code":
            return back("unsupported_response_type", "response_type must be code")
        if AUTHORIZATION_CODE not in client.grant_types:
            return back("unauthorized_client", "the client did not register this grant")
        challenge = query.get("code_challenge")
        if query.get("code_challenge_method") != "S256" or not challenge:
            return back("invalid_request", "PKCE with code_challenge_method S256 is required")
        if not valid_challenge(challenge):
            return back("invalid_request", "code_challenge is not an S256 challenge")
        prompt = query.get("prompt")
        if prompt is not None and prompt not in _PROMPTS:
            return back("invalid_request", f"unsupported prompt {prompt!r}")
        if prompt == "create" and not self._registration_open:
            return back("invalid_request", "registration is closed on this server")
        try:
            scope = parse_scope(query.get("scope"))
        except ScopeError as e:
            return back("invalid_scope", str(e))
        authorization_id = secrets.token_urlsafe(24)
        now = now_ms()
        await self._store.add_authorization(
            AuthorizationRecord(
                authorization_id=authorization_id,
                client_id=client.client_id,
                redirect_uri=redirect_uri,
                scope=scope.scope,
                device_id=scope.device_id,
                state=state,
                nonce=nonce,
                code_challenge=challenge,
                response_mode=response_mode,
                prompt_create=prompt == "create",
                created_ts=now,
                expires_ts=now + AUTHORIZATION_LIFETIME_MS,
                user_id=None,
                exchanged_ts=None,
            )
        )
        return AuthorizationOutcome(CONSENT_PATH + authorization_id)
