"""Identifiers in request paths, checked once by the router.

A path parameter named `userId`, `roomId`, `roomAlias` or `roomIdOrAlias` names
something that may live on another server. One without a valid server name
could only make the server try to federate with a name that is not one, so it
is refused here with 400 M_INVALID_PARAM, for every endpoint, before any
handler sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from homeserver.errors import invalid_param
from homeserver.identifiers import is_valid_room_alias, is_valid_room_id, split_user_id


def _is_user_id(value: str) -> bool:
    return split_user_id(value) is not None


def _is_room_id_or_alias(value: str) -> bool:
    return is_valid_room_id(value) if value.startswith("!") else is_valid_room_alias(value)


_CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "userId": (_is_user_id, "a user id (@localpart:server)"),
    "roomId": (is_valid_room_id, "a room id"),
    "roomAlias": (is_valid_room_alias, "a room alias (#localpart:server)"),
    "roomIdOrAlias": (_is_room_id_or_alias, "a room id or a room alias (#localpart:server)"),
}


def check_path_ids(params: Mapping[str, str]) -> None:
    """400 M_INVALID_PARAM for an identifier in the path that is malformed."""
    for name, value in params.items():
        check = _CHECKS.get(name)
        if check is not None and not check[0](value):
            raise invalid_param(f"{value!r} is not {check[1]}")
