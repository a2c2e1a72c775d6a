"""The Matrix scopes of the OAuth 2.0 API (MSC2967), stable and unstable.

A client asks for `urn:matrix:client:api:*` (full access to the client API)
and `urn:matrix:client:device:<ID>` (the device the session is). Clients
still send MSC2967's unstable spellings; both are accepted, and the scope
granted is echoed in the spelling the client used.
"""

from __future__ import annotations

import re
import secrets
import string

import attrs

API_SCOPES = ("urn:matrix:client:api:*", "urn:matrix:org.matrix.msc2967.client:api:*")
DEVICE_PREFIXES = ("urn:matrix:client:device:", "urn:matrix:org.matrix.msc2967.client:device:")
# OpenID Connect's scope, which Element X and Element Web ask for too; it
# grants nothing here (there is no ID token) and is accepted and echoed.
OPENID = "openid"
# A device id in a scope: the spec's rule (MSC2967) is the unreserved URI characters.
_DEVICE_ID = re.compile(r"^[A-Za-z0-9._~-]{1,255}$")
DEVICE_ID_LENGTH = 10


@attrs.frozen
class MatrixScope:
    """What a requested scope grants: the scope string to echo and the device id."""

    scope: str
    device_id: str


class ScopeError(ValueError):
    """A scope the server does not grant; the message says which."""


def parse_scope(scope: str | None) -> MatrixScope:
    """Check a requested scope; generate a device id when none is asked for.

    The API scope is required: a token without it would be useless, and
    unknown scopes are refused (RFC 6749 section 3.3 lets the server choose).
    """
    if not scope:
        raise ScopeError("scope is required")
    tokens = scope.split(" ")
    if "" in tokens or len(set(tokens)) != len(tokens):
        raise ScopeError("scope must be distinct tokens separated by single spaces")
    has_api = False
    device_id = None
    kept = []
    for token in tokens:
        if token in API_SCOPES:
            has_api = True
        elif token.startswith(DEVICE_PREFIXES):
            value = token.split(":device:", 1)[1]
            if device_id is not None or not _DEVICE_ID.match(value):
                raise ScopeError(f"invalid device scope {token!r}")
            device_id = value
        elif token != OPENID:
            raise ScopeError(f"unsupported scope {token!r}")
        kept.append(token)
    if not has_api:
        raise ScopeError("the scope urn:matrix:client:api:* is required")
    if device_id is None:
        device_id = "".join(
            secrets.choice(string.ascii_uppercase + string.digits) for _ in range(DEVICE_ID_LENGTH)
        )
        kept.append(DEVICE_PREFIXES[0] + device_id)
    return MatrixScope(" ".join(kept), device_id)
