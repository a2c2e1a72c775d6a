"""The `extensions` object of a sliding sync request, validated.

Sliding sync requests carry their whole configuration every time (MSC4186
dropped the sticky parameters of MSC3575), so this is parsed afresh for each
request and nothing of it is stored. Unknown extensions are ignored, as
Synapse does, so that clients asking for extensions this server lacks
(threads) still sync; known ones are checked strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from homeserver.errors import bad_json, invalid_param

# Synapse answers at most 100 to-device messages per response, whatever the
# client's `limit`.
MAX_TO_DEVICE_LIMIT = 100
# How many list names or room ids an extension may name.
MAX_NAMES = 1000
# "All lists" / "all rooms of the response" in an extension's `lists` and `rooms`.
WILDCARD = "*"


@attrs.frozen
class RoomScope:
    """Which rooms of the response a per-room extension covers: those of the
    named lists and the named room subscriptions. MSC3959/MSC3960 and Synapse
    default both to "*"; an explicit null or [] covers none."""

    lists: tuple[str, ...] | None = (WILDCARD,)
    rooms: tuple[str, ...] | None = (WILDCARD,)


@attrs.frozen
class ToDeviceRequest:
    limit: int = MAX_TO_DEVICE_LIMIT
    # The to_device `next_batch` of a previous response: the client has
    # received every message up to it.
    since: int | None = None


@attrs.frozen
class ExtensionsRequest:
    """The enabled extensions (None: not enabled)."""

    to_device: ToDeviceRequest | None = None
    e2ee: bool = False
    account_data: RoomScope | None = None
    receipts: RoomScope | None = None
    typing: RoomScope | None = None
    # thread_subscriptions (MSC4308): how many changes at most.
    thread_subscriptions: int | None = None


def parse_extensions(body: Any) -> ExtensionsRequest:
    """The request's `extensions` value (absent or null: none enabled)."""
    if body is None:
        return ExtensionsRequest()
    if not isinstance(body, dict):
        raise bad_json("'extensions' must be an object")
    sections = {name: _section(body, name) for name in _KNOWN}
    return ExtensionsRequest(
        to_device=_to_device(sections["to_device"]),
        e2ee=sections["e2ee"] is not None and _enabled(sections["e2ee"], "e2ee"),
        account_data=_room_scope(sections["account_data"], "account_data"),
        receipts=_room_scope(sections["receipts"], "receipts"),
        typing=_room_scope(sections["typing"], "typing"),
        thread_subscriptions=_thread_subscriptions(sections["thread_subscriptions"]),
    )


_KNOWN = ("to_device", "e2ee", "account_data", "receipts", "typing", "thread_subscriptions")
# MSC4308's default `limit`; Synapse's cap for the companion endpoint.
THREAD_SUBSCRIPTIONS_LIMIT = 100
MAX_THREAD_SUBSCRIPTIONS_LIMIT = 512


def _section(body: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_json(f"'extensions.{name}' must be an object")
    return value


def _enabled(section: Mapping[str, Any], name: str) -> bool:
    """`enabled` (default false, as in Synapse: a client must ask)."""
    enabled = section.get("enabled", False)
    if enabled is None:
        return False
    if not isinstance(enabled, bool):
        raise bad_json(f"'extensions.{name}.enabled' must be a boolean")
    return enabled


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _to_device(section: Mapping[str, Any] | None) -> ToDeviceRequest | None:
    if section is None:
        return None
    enabled = _enabled(section, "to_device")
    limit = section.get("limit", MAX_TO_DEVICE_LIMIT)
    if limit is None:
        limit = MAX_TO_DEVICE_LIMIT
    if not _is_int(limit) or limit < 1:
        raise bad_json("'extensions.to_device.limit' must be a positive integer")
    since = section.get("since")
    if since is not None and not (
        isinstance(since, str) and since.isascii() and since.isdigit() and len(since) <= 18
    ):
        raise invalid_param("'extensions.to_device.since' is not a to-device position")
    if not enabled:
        return None
    return ToDeviceRequest(
        limit=min(limit, MAX_TO_DEVICE_LIMIT), since=int(since) if since is not None else None
    )


def _names(section: Mapping[str, Any], name: str, key: str) -> tuple[str, ...] | None:
    if key not in section:
        return (WILDCARD,)
    value = section[key]
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_json(f"'extensions.{name}.{key}' must be a list of strings")
    if len(value) > MAX_NAMES:
        raise invalid_param(f"'extensions.{name}.{key}' names more than {MAX_NAMES}")
    return tuple(value)


def _room_scope(section: Mapping[str, Any] | None, name: str) -> RoomScope | None:
    if section is None:
        return None
    enabled = _enabled(section, name)
    scope = RoomScope(lists=_names(section, name, "lists"), rooms=_names(section, name, "rooms"))
    return scope if enabled else None


def _thread_subscriptions(section: Mapping[str, Any] | None) -> int | None:
    if section is None:
        return None
    enabled = _enabled(section, "thread_subscriptions")
    limit = section.get("limit", THREAD_SUBSCRIPTIONS_LIMIT)
    if limit is None:
        limit = THREAD_SUBSCRIPTIONS_LIMIT
    if not _is_int(limit) or limit < 1:
        raise bad_json("'extensions.thread_subscriptions.limit' must be a positive integer")
    return min(limit, MAX_THREAD_SUBSCRIPTIONS_LIMIT) if enabled else None
