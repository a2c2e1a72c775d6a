"""Upstream OpenID Connect providers for the SSO tests.

`MockProvider` is oidc-provider-mock (from PyPI) on a loopback thread: a real
provider with a sign-in form where the test types the subject. It has no
back-channel logout, so the tests sign logout tokens themselves with its
own private key (read from its Flask app's storage).

`CraftedProvider` is a small provider whose token endpoint answers with an ID
token the test chose (another signing key, an expired one, the wrong nonce),
to see the server refuse each; it skips the sign-in form.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import flask
import oidc_provider_mock
import werkzeug.serving
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class MockProvider:
    def __init__(self, url: str, key: RSAKey) -> None:
        self.url = url
        self.issuer = url
        self.key = key

    def logout_token(self, client_id: str, **claims: Any) -> str:
        """A logout token signed with the provider's own key."""
        body = {
            "iss": self.issuer,
            "aud": client_id,
            "iat": int(time.time()),
            "jti": str(uuid.uuid4()),
            "events": {BACKCHANNEL_EVENT: {}},
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode({"alg": "RS256", "kid": self.key.kid}, body, self.key)


@contextmanager
def run_mock_provider() -> Iterator[MockProvider]:
    app = oidc_provider_mock.app()
    with app.test_request_context("/"):
        app.preprocess_request()
        private = flask.g.oidc_provider_mock_storage.jwk.as_dict(is_private=True)
    server = werkzeug.serving.make_server("localhost", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield MockProvider(f"http://localhost:{server.server_port}", RSAKey.import_key(private))
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


class CraftedProvider:
    """Answers the code exchange with `self.id_token(nonce)`, which a test sets."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, {"kid": "k1"})
        self.url = ""
        self.client_id = "crafted-client"
        self.claims: dict[str, Any] = {}
        self.sign_with: RSAKey | None = None
        self.header: dict[str, Any] = {}
        self.nonce_override: str | None = None
        self.userinfo_claims: dict[str, Any] = {}
        # With a key: the token endpoint wants private_key_jwt signed by it.
        self.client_key: RSAKey | None = None
        self.client_auth_seen: list[str] = []
        self._nonces: dict[str, str] = {}
        self._challenges: dict[str, str] = {}

    def rotate(self) -> None:
        self.key = RSAKey.generate_key(2048, {"kid": secrets.token_hex(4)})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_get("/userinfo", self._userinfo)
        return app

    def logout_token(self, **claims: Any) -> str:
        body = {
            "iss": self.url,
            "aud": self.client_id,
            "iat": int(time.time()),
            "jti": str(uuid.uuid4()),
            "events": {BACKCHANNEL_EVENT: {}},
            **claims,
        }
        return jwt.encode({"alg": "RS256", "kid": self.key.kid}, body, self.key)

    def _check_client_assertion(self, assertion: str) -> None:
        assert self.client_key is not None
        claims = jwt.decode(assertion, self.client_key, algorithms=["RS256"]).claims
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.client_id},
            sub={"essential": True, "value": self.client_id},
            aud={"essential": True, "value": self.url + "/token"},
            exp={"essential": True},
            jti={"essential": True},
        )
        registry.validate(claims)

    async def _userinfo(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer at":
            raise web.HTTPUnauthorized()
        return web.json_response({"sub": "crafted-user", **self.userinfo_claims})

    async def _discovery(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.url,
                "authorization_endpoint": self.url + "/authorize",
                "token_endpoint": self.url + "/token",
                "jwks_uri": self.url + "/jwks",
                "userinfo_endpoint": self.url + "/userinfo",
            }
        )

    async def _jwks(self, _: web.Request) -> web.Response:
        return web.json_response(KeySet([self.key]).as_dict(private=False))

    async def _authorize(self, request: web.Request) -> web.Response:
        code = secrets.token_urlsafe(8)
        assert request.query["code_challenge_method"] == "S256"
        self._nonces[code] = request.query["nonce"]
        self._challenges[code] = request.query["code_challenge"]
        query = urlencode({"code": code, "state": request.query["state"]})
        raise web.HTTPFound(f"{request.query['redirect_uri']}?{query}")

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self.client_key is not None:
            self._check_client_assertion(str(form.get("client_assertion", "")))
        self.client_auth_seen.append(
            "private_key_jwt" if "client_assertion" in form else "client_secret"
        )
        nonce = self._nonces.pop(str(form["code"]))
        # PKCE (RFC 7636): the verifier must hash to the challenge of the code.
        verifier = str(form.get("code_verifier", ""))
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != self._challenges.pop(
            str(form["code"])
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": self.client_id,
            "sub": "crafted-user",
            "preferred_username": "crafted",
            "iat": now,
            "exp": now + 300,
            "nonce": self.nonce_override or nonce,
            **self.claims,
        }
        key = self.sign_with or self.key
        header = {"alg": "RS256", "kid": key.kid, **self.header}
        return web.json_response(
            {
                "access_token": "at",
                "token_type": "Bearer",
                "id_token": jwt.encode(header, claims, key),
            }
        )
