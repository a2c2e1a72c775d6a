"""Request authentication between servers: the X-Matrix Authorization header.

A request is signed as the JSON object {method, uri, origin, destination,
content}; the header carries the origin, destination, key id and signature.
Outbound requests are signed with `sign_request`; inbound ones are checked by
`RequestVerifier`, once, in the federation router.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import attrs
from signedjson.key import is_signing_algorithm_supported
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json
from signedjson.types import SigningKey, VerifyKey

from homeserver.errors import MatrixError
from homeserver.events.event import is_server_name
from storage.database import now_ms


@attrs.frozen
class XMatrix:
    """The parameters of an X-Matrix Authorization header."""

    origin: str
    key_id: str
    signature: str
    destination: str | None = None


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_x_matrix(auth: XMatrix) -> str:
    params = [("origin", auth.origin)]
    if auth.destination is not None:
        params.append(("destination", auth.destination))
    params += [("key", auth.key_id), ("sig", auth.signature)]
    return "X-Matrix " + ",".join(f"{name}={_quote(value)}" for name, value in params)


def _params(text: str) -> dict[str, str]:
    """auth-params per RFC 9110: name=token or name="quoted string", comma separated."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        if eq < 0:
            raise ValueError("a parameter without a value")
        name = text[i:eq].strip().lower()
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            chars = []
            while True:
                if i >= n:
                    raise ValueError("unterminated quoted string")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    chars.append(text[i + 1])
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    chars.append(c)
                    i += 1
            value = "".join(chars)
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            value = text[i:end].strip()
            i = end
        if not name or name in params:
            raise ValueError(f"bad or repeated parameter {name!r}")
        params[name] = value
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] != ",":
            raise ValueError("parameters must be separated by commas")
    return params


def parse_x_matrix(header: str) -> XMatrix:
    """Parse an Authorization header value; ValueError if it is no valid X-Matrix one."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "x-matrix":
        raise ValueError("not an X-Matrix authorization")
    params = _params(rest)
    try:
        origin, key_id, sig = params["origin"], params["key"], params["sig"]
    except KeyError as e:
        raise ValueError(f"missing {e.args[0]} parameter") from None
    if not is_server_name(origin):
        raise ValueError("origin is not a server name")
    return XMatrix(origin, key_id, sig, params.get("destination"))


def request_object(
    method: str, uri: str, origin: str, destination: str, content: Any
) -> dict[str, Any]:
    """The JSON object whose signature authenticates a request."""
    obj: dict[str, Any] = {
        "method": method,
        "uri": uri,
        "origin": origin,
        "destination": destination,
    }
    if content is not None:
        obj["content"] = content
    return obj


def sign_request(
    *,
    method: str,
    uri: str,
    origin: str,
    destination: str,
    content: Any,
    signing_key: SigningKey,
) -> str:
    """The Authorization header value for an outbound request.

    `uri` is the path and query exactly as they go on the wire.
    """
    signed = sign_json(
        request_object(method, uri, origin, destination, content), origin, signing_key
    )
    key_id = f"{signing_key.alg}:{signing_key.version}"
    signature = signed["signatures"][origin][key_id]
    return format_x_matrix(XMatrix(origin, key_id, signature, destination))


class VerifyKeySource(Protocol):
    """Where the verifier finds the keys of other servers (the key ring)."""

    async def verify_keys(
        self, server_name: str, key_ids: Iterable[str], at_ts: int
    ) -> Mapping[str, VerifyKey]: ...


def unauthorized(message: str) -> MatrixError:
    return MatrixError(401, "M_UNAUTHORIZED", message)


class RequestVerifier:
    """Checks inbound requests; the answer is the authenticated origin server."""

    def __init__(self, keys: VerifyKeySource, server_name: str) -> None:
        self._keys = keys
        self._server_name = server_name

    async def authenticate(
        self, method: str, uri: str, authorizations: Iterable[str], content: Any
    ) -> str:
        """The origin of a validly signed request; 401 M_UNAUTHORIZED otherwise.

        Of several X-Matrix headers the first that verifies wins, as the spec
        allows a server to send one per key.
        """
        headers = [h for h in authorizations if h.strip().lower().startswith("x-matrix")]
        if not headers:
            raise unauthorized("Missing X-Matrix Authorization header")
        problem = "no valid signature"
        for header in headers:
            try:
                auth = parse_x_matrix(header)
            except ValueError as e:
                problem = f"Malformed X-Matrix header: {e}"
                continue
            if auth.destination is not None and auth.destination != self._server_name:
                problem = "The request is for another server"
                continue
            if not is_signing_algorithm_supported(auth.key_id):
                problem = f"Unsupported key algorithm in {auth.key_id}"
                continue
            keys = await self._keys.verify_keys(auth.origin, [auth.key_id], now_ms())
            verify_key = keys.get(auth.key_id)
            if verify_key is None:
                problem = f"Unknown key {auth.key_id} of {auth.origin}"
                continue
            obj = request_object(method, uri, auth.origin, self._server_name, content)
            obj["signatures"] = {auth.origin: {auth.key_id: auth.signature}}
            try:
                verify_signed_json(obj, auth.origin, verify_key)
            except SignatureVerifyException:
                problem = f"Bad signature from {auth.origin}"
                continue
            return auth.origin
        raise unauthorized(problem)
