"""The grammar of Matrix identifiers that the client API checks."""

from __future__ import annotations

import ipaddress
import re

# Historical user ids may hold more characters; new accounts get only these.
_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
MAX_USER_ID_LENGTH = 255
# The spec's server name grammar: a DNS name (letters, digits, '-' and '.',
# in labels that DNS and IDNA accept: none empty, none over 63), an IPv4
# address or a bracketed IPv6 literal, then an optional port.
_DNS_NAME = re.compile(r"[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.?")
_PORT = re.compile(r"[0-9]{1,5}")
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def user_id_for(localpart: str, server_name: str) -> str:
    return f"@{localpart}:{server_name}"


def is_valid_localpart(localpart: str) -> bool:
    # fullmatch: `$` with match() would let a trailing newline through.
    return _LOCALPART.fullmatch(localpart) is not None


def is_valid_server_name(name: str) -> bool:
    """Whether `name` is a server name the spec allows: anything else (empty,
    spaces, a bad IP literal, a port out of range) could never be federated
    with, so it is refused where a client hands it in."""
    host, port = name, None
    if name.startswith("["):
        host, sep, rest = name[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return False
        port = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
    else:
        host, sep, port_text = name.partition(":")
        port = port_text if sep else None
        if len(host) > 255 or _DNS_NAME.fullmatch(host) is None:
            return False
        if _IPV4.fullmatch(host) is not None:
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                return False
    return port is None or (_PORT.fullmatch(port) is not None and 0 < int(port) < 65536)


def server_name_of(identifier: str) -> str | None:
    """The server part of a user id, room alias or (pre-v12) room id, if it
    has a valid one; None otherwise."""
    _, sep, server = identifier.partition(":")
    return server if sep and is_valid_server_name(server) else None


def split_user_id(user_id: str) -> tuple[str, str] | None:
    """('@alice:example.org') -> ('alice', 'example.org'); None if it is no
    user id (no sigil, an empty localpart, or no valid server name)."""
    if not user_id.startswith("@") or ":" not in user_id:
        return None
    localpart, _, server = user_id[1:].partition(":")
    if not localpart or not is_valid_server_name(server):
        return None
    return localpart, server


def is_valid_user_id(user_id: str) -> bool:
    return len(user_id) <= MAX_USER_ID_LENGTH and split_user_id(user_id) is not None


def is_valid_room_alias(alias: str) -> bool:
    """'#local:server' with a non-empty localpart and a valid server name."""
    localpart, _, _ = alias[1:].partition(":")
    return (
        alias.startswith("#")
        and bool(localpart)
        and len(alias) <= 255
        and server_name_of(alias) is not None
    )


def is_valid_room_id(room_id: str) -> bool:
    """Room ids are opaque after the sigil; rooms before v12 also name a
    server, which must then be a valid server name (one could be asked)."""
    return (
        room_id.startswith("!")
        and 1 < len(room_id) <= 255
        and (":" not in room_id or server_name_of(room_id) is not None)
    )
