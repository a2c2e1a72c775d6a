"""HTTP calls from this homeserver to identity servers (spec: Identity Service API v2).

The client is told which identity server to use by the user (`id_server`,
a host with an optional port, always reached over HTTPS) and passes the
user's `id_access_token` on the calls that need it. Unbinding is signed as
a federation request instead (X-Matrix, by the `sign` callable the
composition root gives, since this package does not import federation).

Certificates are checked against the outbound trust (homeserver/tls_trust.py,
config `outbound_tls_ca_file`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import ssl
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import aiohttp
import attrs
from unpaddedbase64 import encode_base64

from homeserver.errors import MatrixError, invalid_param

logger = logging.getLogger(__name__)

IDENTITY_V2: Final = "/_matrix/identity/v2"
TIMEOUT: Final = aiohttp.ClientTimeout(total=15, connect=5)
# A host name, IPv4 or bracketed IPv6 literal, with an optional port.
_SERVER_NAME: Final = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")

# (method, path and query, destination, JSON body) -> Authorization header value.
RequestSigner = Callable[[str, str, str, Any], str]


def check_id_server(value: Any) -> str:
    """An `id_server` from a request: a server name, never a URL (400 otherwise)."""
    if not isinstance(value, str) or not _SERVER_NAME.match(value):
        raise invalid_param("id_server must be a host name with an optional port")
    return value


def lookup_hash(medium: str, address: str, pepper: str) -> str:
    """The sha256 lookup hash of the spec: unpadded URL-safe base64 of
    sha256("<address> <medium> <pepper>")."""
    digest = hashlib.sha256(f"{address} {medium} {pepper}".encode()).digest()
    return encode_base64(digest, urlsafe=True)


@attrs.frozen
class StoredInvite:
    """An identity server's answer to /store-invite."""

    token: str
    display_name: str
    # Each with `public_key` and `key_validity_url`.
    public_keys: list[dict[str, str]]


class IdentityServerClient:
    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        sign: RequestSigner | None = None,
    ) -> None:
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._sign = sign
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=TIMEOUT, connector=aiohttp.TCPConnector(ssl=self._ssl)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """(status, JSON body or None); 502 M_UNKNOWN if the server cannot be reached."""
        data = None
        all_headers = dict(headers or {})
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            all_headers["Content-Type"] = "application/json"
        try:
            async with self._client().request(method, url, data=data, headers=all_headers) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as e:
            logger.warning("identity server request %s %s failed: %r", method, url, e)
            raise MatrixError(502, "M_UNKNOWN", "Failed to contact the identity server") from None
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    async def _call(
        self, method: str, id_server: str, path: str, token: str | None, body: Any = None
    ) -> dict[str, Any]:
        """A v2 call; the identity server's own 4xx error is passed on to the client."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        url = f"https://{id_server}{IDENTITY_V2}{path}"
        status, answer = await self._request(method, url, body=body, headers=headers)
        if 200 <= status < 300 and isinstance(answer, dict):
            return answer
        if 400 <= status < 500:
            errcode, error = "M_UNKNOWN", f"The identity server answered HTTP {status}"
            if isinstance(answer, dict) and isinstance(answer.get("errcode"), str):
                errcode = answer["errcode"]
                error = str(answer.get("error", error))
            raise MatrixError(status, errcode, error)
        raise MatrixError(502, "M_UNKNOWN", f"The identity server answered HTTP {status}")

    async def bind(
        self, id_server: str, token: str, *, sid: str, client_secret: str, mxid: str
    ) -> tuple[str, str]:
        """Bind a 3PID the identity server validated (session `sid`) to
        `mxid`; the bound (medium, address)."""
        answer = await self._call(
            "POST",
            id_server,
            "/3pid/bind",
            token,
            {"sid": sid, "client_secret": client_secret, "mxid": mxid},
        )
        medium, address = answer.get("medium"), answer.get("address")
        if not isinstance(medium, str) or not isinstance(address, str):
            raise MatrixError(502, "M_UNKNOWN", "The identity server's bind answer is malformed")
        return medium, address

    async def unbind(self, id_server: str, *, mxid: str, medium: str, address: str) -> bool:
        """Ask the identity server to forget a binding; False when it says
        it cannot (400, 404, 501: no such binding or no support), as Synapse."""
        body = {"mxid": mxid, "threepid": {"medium": medium, "address": address}}
        path = f"{IDENTITY_V2}/3pid/unbind"
        headers = {}
        if self._sign is not None:
            headers["Authorization"] = self._sign("POST", path, id_server, body)
        status, _ = await self._request(
            "POST", f"https://{id_server}{path}", body=body, headers=headers
        )
        if 200 <= status < 300:
            return True
        if status in (400, 404, 501):
            logger.info("identity server %s did not unbind (HTTP %d)", id_server, status)
            return False
        raise MatrixError(502, "M_UNKNOWN", f"The identity server answered HTTP {status}")

    async def lookup(self, id_server: str, token: str, medium: str, address: str) -> str | None:
        """The Matrix user id bound to a 3PID, or None: hashed with the
        server's pepper when it offers sha256, in the clear only when it
        offers nothing else."""
        details = await self._call("GET", id_server, "/hash_details", token)
        algorithms = details.get("algorithms")
        pepper = details.get("lookup_pepper")
        if not isinstance(algorithms, list) or not isinstance(pepper, str):
            raise MatrixError(502, "M_UNKNOWN", "The identity server's hash details are malformed")
        if "sha256" in algorithms:
            key, algorithm = lookup_hash(medium, address, pepper), "sha256"
        elif "none" in algorithms:
            key, algorithm = f"{address} {medium}", "none"
        else:
            raise MatrixError(400, "M_UNKNOWN", "The identity server offers no known lookup")
        answer = await self._call(
            "POST",
            id_server,
            "/lookup",
            token,
            {"addresses": [key], "algorithm": algorithm, "pepper": pepper},
        )
        mappings = answer.get("mappings")
        mxid = mappings.get(key) if isinstance(mappings, dict) else None
        return mxid if isinstance(mxid, str) else None

    async def store_invite(self, id_server: str, token: str, body: dict[str, Any]) -> StoredInvite:
        """Have the identity server keep an invite for an unbound 3PID."""
        answer = await self._call("POST", id_server, "/store-invite", token, body)
        invite_token = answer.get("token")
        keys = answer.get("public_keys")
        if not isinstance(keys, list) or not keys:
            single = answer.get("public_key")
            keys = [
                {
                    "public_key": single,
                    "key_validity_url": f"https://{id_server}{IDENTITY_V2}/pubkey/isvalid",
                }
            ]
        valid_keys = [
            {"public_key": k["public_key"], "key_validity_url": k["key_validity_url"]}
            for k in keys
            if isinstance(k, dict)
            and isinstance(k.get("public_key"), str)
            and isinstance(k.get("key_validity_url"), str)
        ]
        if not isinstance(invite_token, str) or not invite_token or not valid_keys:
            raise MatrixError(502, "M_UNKNOWN", "The identity server's invite answer is malformed")
        display_name = answer.get("display_name")
        return StoredInvite(
            invite_token, display_name if isinstance(display_name, str) else "", valid_keys
        )

    async def key_is_valid(self, key_validity_url: str, public_key: str) -> bool:
        """Whether the identity server still vouches for `public_key`; False
        if its validity URL is not HTTPS or cannot be reached."""
        if urlsplit(key_validity_url).scheme != "https":
            return False
        separator = "&" if "?" in key_validity_url else "?"
        url = f"{key_validity_url}{separator}{urlencode({'public_key': public_key})}"
        try:
            status, answer = await self._request("GET", url)
        except MatrixError:
            return False
        return 200 <= status < 300 and isinstance(answer, dict) and answer.get("valid") is True
