"""One upstream OpenID Connect provider, as this server talks to it.

Discovery (cached), the authorization URL with PKCE (S256), the code
exchange at the token endpoint (client_secret_basic, client_secret_post or
private_key_jwt), userinfo, and the validation of its ID tokens and
back-channel logout tokens. All JOSE work is joserfc's: signatures against
the provider's JWKS (fetched again when a token names a key we do not have,
as keys rotate), the algorithm allow-list, and the registered claims.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import attrs
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, import_key
from joserfc.jwt import JWTClaimsRegistry

from homeserver.config import ConfigError, OidcProviderConfig

logger = logging.getLogger(__name__)

# How long discovery documents are trusted before they are read again.
_METADATA_TTL_S = 3600
# For a logout token (which anyone can post) naming an unknown key id, the
# JWKS is fetched again at most this often, so made-up key ids cannot make us
# hammer the provider. An ID token comes from the token endpoint itself, so
# its new key id is always looked up at once (the provider rotated its keys).
_JWKS_MIN_REFETCH_S = 10
# Clock skew allowed on exp/iat/nbf.
_LEEWAY_S = 60
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class UpstreamError(Exception):
    """The provider's answer cannot be used; the message is safe to show."""


@attrs.frozen
class Endpoints:
    authorization: str
    token: str
    userinfo: str | None
    jwks_uri: str


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: base64url(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcProvider:
    def __init__(
        self,
        config: OidcProviderConfig,
        http: Callable[[], aiohttp.ClientSession],
        redirect_uri: str,
        key_file: Path | None,
    ) -> None:
        self.config = config
        self.redirect_uri = redirect_uri
        self._http = http
        self._endpoints: Endpoints | None = None
        self._endpoints_ts = 0.0
        self._jwks: KeySet | None = None
        self._jwks_ts = 0.0
        self._client_key = _client_key(config, key_file) if key_file is not None else None

    @property
    def idp_id(self) -> str:
        return self.config.idp_id

    async def endpoints(self) -> Endpoints:
        c = self.config
        if not c.discover:
            assert c.authorization_endpoint and c.token_endpoint and c.jwks_uri
            return Endpoints(
                c.authorization_endpoint, c.token_endpoint, c.userinfo_endpoint, c.jwks_uri
            )
        if self._endpoints is None or time.monotonic() - self._endpoints_ts > _METADATA_TTL_S:
            url = c.issuer.rstrip("/") + "/.well-known/openid-configuration"
            doc = await self._get_json(url)
            if doc.get("issuer") != c.issuer:
                raise UpstreamError("The provider's discovery document names another issuer")
            try:
                self._endpoints = Endpoints(
                    c.authorization_endpoint or _str(doc["authorization_endpoint"]),
                    c.token_endpoint or _str(doc["token_endpoint"]),
                    c.userinfo_endpoint or doc.get("userinfo_endpoint"),
                    c.jwks_uri or _str(doc["jwks_uri"]),
                )
            except (KeyError, TypeError):
                raise UpstreamError("The provider's discovery document is incomplete") from None
            self._endpoints_ts = time.monotonic()
        return self._endpoints

    async def authorization_url(self, state: str, nonce: str, code_verifier: str) -> str:
        endpoints = await self.endpoints()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": " ".join(self.config.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": pkce_challenge(code_verifier),
                "code_challenge_method": "S256",
            },
            quote_via=quote,
        )
        sep = "&" if "?" in endpoints.authorization else "?"
        return endpoints.authorization + sep + query

    async def exchange_code(self, code: str, code_verifier: str) -> dict[str, Any]:
        """The token response for an authorization code (RFC 6749 4.1.3)."""
        endpoints = await self.endpoints()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {"Accept": "application/json"}
        method = self.config.client_auth_method
        if method == "client_secret_basic":
            # RFC 6749 2.3.1: each part form-encoded before base64.
            pair = f"{quote(self.config.client_id, safe='')}:{quote(self.config.client_secret or '', safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif method == "client_secret_post":
            form["client_id"] = self.config.client_id
            form["client_secret"] = self.config.client_secret or ""
        else:
            form["client_id"] = self.config.client_id
            form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            form["client_assertion"] = self._client_assertion(endpoints.token)
        try:
            async with self._http().post(endpoints.token, data=form, headers=headers) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as e:
            raise UpstreamError("The provider's token endpoint cannot be reached") from e
        try:
            tokens = json.loads(body)
        except ValueError:
            tokens = None
        if status != 200 or not isinstance(tokens, dict):
            error = tokens.get("error") if isinstance(tokens, dict) else None
            logger.warning("token endpoint of %s answered %s: %r", self.idp_id, status, error)
            raise UpstreamError("The provider refused to complete the sign-in")
        if not isinstance(tokens.get("id_token"), str):
            raise UpstreamError("The provider sent no ID token")
        return tokens

    def _client_assertion(self, audience: str) -> str:
        """private_key_jwt (OpenID Connect Core 9): a short-lived JWT signed by our key."""
        assert self._client_key is not None
        now = int(time.time())
        claims = {
            "iss": self.config.client_id,
            "sub": self.config.client_id,
            "aud": audience,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 120,
        }
        header = {"alg": self.config.client_auth_signing_alg}
        return jwt.encode(header, claims, self._client_key)

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        endpoints = await self.endpoints()
        if endpoints.userinfo is None:
            raise UpstreamError("The provider has no userinfo endpoint")
        return await self._get_json(
            endpoints.userinfo, headers={"Authorization": f"Bearer {access_token}"}
        )

    async def id_token_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of a valid ID token (OpenID Connect Core 3.1.3.7)."""
        claims = await self._verified_claims(id_token, trusted_source=True)
        registry = JWTClaimsRegistry(
            leeway=_LEEWAY_S,
            iss={"essential": True, "value": self.config.issuer},
            aud={"essential": True, "value": self.config.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        self._validate(registry, claims)
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.config.client_id:
            raise UpstreamError("The ID token was issued to another client")
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
            raise UpstreamError("The ID token does not belong to this sign-in (wrong nonce)")
        return claims

    async def logout_token_claims(self, logout_token: str) -> dict[str, Any]:
        """The claims of a valid logout token (OpenID Connect Back-Channel Logout 1.0, 2.6)."""
        claims = await self._verified_claims(logout_token, trusted_source=False)
        registry = JWTClaimsRegistry(
            leeway=_LEEWAY_S,
            iss={"essential": True, "value": self.config.issuer},
            aud={"essential": True, "value": self.config.client_id},
            iat={"essential": True},
        )
        self._validate(registry, claims)
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(
            events.get(BACKCHANNEL_LOGOUT_EVENT), dict
        ):
            raise UpstreamError("The logout token has no back-channel logout event")
        if "nonce" in claims:
            raise UpstreamError("A logout token must not carry a nonce")
        sub, sid = claims.get("sub"), claims.get("sid")
        if sub is None and sid is None:
            raise UpstreamError("The logout token names neither a subject nor a session")
        if not isinstance(sub, str | None) or not isinstance(sid, str | None):
            raise UpstreamError("The logout token's sub and sid must be strings")
        return claims

    @staticmethod
    def _validate(registry: JWTClaimsRegistry, claims: dict[str, Any]) -> None:
        try:
            registry.validate(claims)
        except JoseError as e:
            raise UpstreamError(f"The token is not valid: {e.description or e.error}") from e

    async def _verified_claims(self, token: str, *, trusted_source: bool) -> dict[str, Any]:
        """The claims of a JWS compact token signed by the provider with an
        allowed algorithm; the JWKS is read again once for a new key id."""
        try:
            header = jws.extract_compact(token.encode()).protected
        except (JoseError, ValueError, UnicodeError):
            raise UpstreamError("The token is not a signed JWT") from None
        if header.get("alg") not in self.config.id_token_signing_algs:
            raise UpstreamError(f"The token's algorithm {header.get('alg')!r} is not allowed")
        keys = await self._keys(header.get("kid"), trusted_source)
        try:
            return jwt.decode(token, keys, algorithms=self.config.id_token_signing_algs).claims
        except (JoseError, ValueError) as e:
            raise UpstreamError("The token's signature is not valid") from e

    async def _keys(self, kid: Any, trusted_source: bool) -> KeySet:
        known = self._jwks is not None and (
            kid is None or any(k.kid == kid for k in self._jwks.keys)
        )
        may_refetch = trusted_source or time.monotonic() - self._jwks_ts > _JWKS_MIN_REFETCH_S
        if self._jwks is None or (not known and may_refetch):
            doc = await self._get_json((await self.endpoints()).jwks_uri)
            try:
                self._jwks = KeySet.import_key_set(doc)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError):
                raise UpstreamError("The provider's key set cannot be read") from None
            self._jwks_ts = time.monotonic()
        return self._jwks

    async def _get_json(self, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            async with self._http().get(url, headers=headers) as resp:
                if resp.status != 200:
                    raise UpstreamError(f"The provider answered {resp.status} at {url}")
                body = json.loads(await resp.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise UpstreamError(f"The provider cannot be read at {url}") from e
        if not isinstance(body, dict):
            raise UpstreamError(f"The provider sent no JSON object at {url}")
        return body


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _client_key(config: OidcProviderConfig, key_file: Path) -> Any:
    """The private_key_jwt signing key; a bad file stops start-up naming it."""
    key_type = "EC" if config.client_auth_signing_alg.startswith("ES") else "RSA"
    try:
        return import_key(key_file.read_bytes(), key_type)
    except (OSError, ValueError, JoseError) as e:
        raise ConfigError(
            f"oidc_providers ({config.idp_id}).client_auth_key_file: not a usable"
            f" {key_type} private key: {e}"
        ) from None
