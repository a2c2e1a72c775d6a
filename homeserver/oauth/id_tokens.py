"""OpenID Connect ID tokens for clients that ask for the `openid` scope.

The Matrix OAuth 2.0 API needs no ID token, but Element Web's sign-in
(matrix-js-sdk's completeAuthorizationCodeGrant, over oidc-client-ts)
refuses a token response without one, checking its issuer, audience, nonce
and expiry, as it does against MAS. So the server signs one (RS256, the
algorithm every OpenID Connect client supports) with a key kept in the data
directory and published at the metadata's `jwks_uri`. JOSE is joserfc's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

ALGORITHM = "RS256"
ID_TOKEN_LIFETIME_S = 300


def load_or_create_key(path: Path) -> RSAKey:
    """The server's ID token key, created (readable by the owner only) at first start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = RSAKey.generate_key(2048, private=True)
        path.write_bytes(key.as_pem(private=True))
        path.chmod(0o600)
    return RSAKey.import_key(path.read_bytes())


class IdTokens:
    def __init__(self, key: RSAKey, issuer: str) -> None:
        self._key = key
        self._kid = key.thumbprint()
        self._issuer = issuer

    def jwks(self) -> dict[str, Any]:
        """The public key set for `jwks_uri`."""
        public = {**self._key.as_dict(private=False), "kid": self._kid}
        return {"keys": [{**public, "use": "sig", "alg": ALGORITHM}]}

    def sign(self, user_id: str, client_id: str, nonce: str | None, auth_time_ms: int) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": user_id,
            "aud": client_id,
            "iat": now,
            "exp": now + ID_TOKEN_LIFETIME_S,
            "auth_time": auth_time_ms // 1000,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode({"alg": ALGORITHM, "kid": self._kid}, claims, self._key)
