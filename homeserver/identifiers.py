"""The grammar of Matrix identifiers that the client API checks."""

from __future__ import annotations

import re

# Historical user ids may hold more characters; new accounts get only these.
_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
MAX_USER_ID_LENGTH = 255


def user_id_for(localpart: str, server_name: str) -> str:
    return f"@{localpart}:{server_name}"


def is_valid_localpart(localpart: str) -> bool:
    # fullmatch: with match and `$`, a trailing newline would pass.
    return bool(_LOCALPART.fullmatch(localpart))


def split_user_id(user_id: str) -> tuple[str, str] | None:
    """('@alice:example.org') -> ('alice', 'example.org'); None if it is no user id."""
    if not user_id.startswith("@") or ":" not in user_id:
        return None
    localpart, _, server = user_id[1:].partition(":")
    if not localpart or not server:
        return None
    return localpart, server


def is_valid_user_id(user_id: str) -> bool:
    return len(user_id) <= MAX_USER_ID_LENGTH and split_user_id(user_id) is not None


def is_valid_room_id(room_id: str) -> bool:
    """Room ids are opaque after the sigil; rooms before v12 also name a server."""
    return room_id.startswith("!") and 1 < len(room_id) <= 255
