"""The check on an `m.room.canonical_alias` event a local user sends.

The spec's PUT /rooms/{roomId}/state: 400 M_INVALID_PARAM when an alias in
the event is not an alias at all, 400 M_BAD_ALIAS when one does not point to
the room. As in Synapse, only aliases the event adds are looked up: an alias
that was deleted later stays in the event without blocking every edit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from homeserver.errors import MatrixError, invalid_param
from homeserver.rooms.directory import split_alias

AliasLookup = Callable[[str], Awaitable[str | None]]
"""alias -> the room id it points to, or None when it points nowhere."""


def _aliases(content: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """The event's `alias` and `alt_aliases`, checked for syntax."""
    alias = content.get("alias")
    if alias is not None:
        if not isinstance(alias, str):
            raise invalid_param("'alias' must be a room alias")
        split_alias(alias)
    alt_aliases = content.get("alt_aliases", [])
    if not isinstance(alt_aliases, list) or not all(isinstance(a, str) for a in alt_aliases):
        raise invalid_param("'alt_aliases' must be a list of room aliases")
    for alt in alt_aliases:
        split_alias(alt)
    return alias, alt_aliases


def _previous(content: Mapping[str, Any] | None) -> tuple[Any, set[Any]]:
    """The aliases of the event being replaced, whatever their shape."""
    if content is None:
        return None, set()
    alt = content.get("alt_aliases")
    strings = [a for a in alt if isinstance(a, str)] if isinstance(alt, list) else []
    return content.get("alias"), set(strings)


async def check_canonical_alias(
    room_id: str,
    content: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    lookup: AliasLookup,
) -> None:
    """Refuse `content` unless every alias it adds to `previous` (the
    current event's content, if any) points to `room_id`."""
    alias, alt_aliases = _aliases(content)
    old_alias, old_alt = _previous(previous)
    added = [a for a in alt_aliases if a not in old_alt]
    if alias is not None and alias != old_alias:
        added.insert(0, alias)
    for new in dict.fromkeys(added):
        if await lookup(new) != room_id:
            raise MatrixError(400, "M_BAD_ALIAS", f"Room alias {new} does not point to the room")
