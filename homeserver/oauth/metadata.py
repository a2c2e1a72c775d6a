"""The authorization server metadata (RFC 8414) as the spec's
`GET /_matrix/client/v1/auth_metadata` serves it (MSC2965)."""

from __future__ import annotations

from typing import Any

from homeserver.oauth.clients import GRANT_TYPES
from homeserver.oauth.id_tokens import ALGORITHM as ID_TOKEN_ALGORITHM
from homeserver.oauth.redirects import RESPONSE_MODES

OAUTH_PREFIX = "/_homeserver/oauth2"
ACCOUNT_PATH = "/_homeserver/web/account"
# The account page's actions (MSC4191): the names of the spec and the
# `sessions` ones MSC4191 uses since, which clients send too.
ACCOUNT_ACTIONS = [
    "org.matrix.profile",
    "org.matrix.devices_list",
    "org.matrix.device_view",
    "org.matrix.device_delete",
    "org.matrix.sessions_list",
    "org.matrix.session_view",
    "org.matrix.session_end",
    "org.matrix.account_deactivate",
    "org.matrix.cross_signing_reset",
]


def issuer_of(base_url: str) -> str:
    return base_url.rstrip("/") + "/"


def account_management_uri(base_url: str) -> str:
    return base_url.rstrip("/") + ACCOUNT_PATH


def auth_metadata(base_url: str, *, registration_open: bool) -> dict[str, Any]:
    base = base_url.rstrip("/")
    return {
        "issuer": issuer_of(base_url),
        "authorization_endpoint": f"{base}{OAUTH_PREFIX}/authorize",
        "token_endpoint": f"{base}{OAUTH_PREFIX}/token",
        "registration_endpoint": f"{base}{OAUTH_PREFIX}/registration",
        "revocation_endpoint": f"{base}{OAUTH_PREFIX}/revoke",
        "device_authorization_endpoint": f"{base}{OAUTH_PREFIX}/device_authorization",
        "response_types_supported": ["code"],
        "response_modes_supported": list(RESPONSE_MODES),
        "grant_types_supported": list(GRANT_TYPES),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["openid", "urn:matrix:client:api:*", "urn:matrix:client:device:*"],
        # OpenID Connect, for clients that want an ID token (see id_tokens.py).
        "jwks_uri": f"{base}{OAUTH_PREFIX}/keys.json",
        "id_token_signing_alg_values_supported": [ID_TOKEN_ALGORITHM],
        "subject_types_supported": ["public"],
        "prompt_values_supported": ["create"] if registration_open else [],
        "account_management_uri": account_management_uri(base_url),
        "account_management_actions_supported": ACCOUNT_ACTIONS,
    }
