"""Who may see a room's summary: the rules the space hierarchy, the room
summary and the federation hierarchy share, and the summary entry itself.

Pure functions over a room's summary row (storage/directory.py) or over a
summary another server sent. The spec lists who may see a room in the
hierarchy's response schema; the room summary (MSC3266) follows the same
list, and for rooms seen through another server Synapse's checks are
followed (clients rely on its answers).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.rooms.directory import summary_fields
from storage.directory import RoomSummaryRow

# Join rules that let anyone see the room, whatever the room version.
_OPEN_RULES = ("public",)


def join_rules(row: RoomSummaryRow) -> tuple[str | None, list[str]]:
    """The join rule and the rooms a restricted rule admits members of."""
    content = row.state.get("m.room.join_rules", {})
    rule = content.get("join_rule")
    allow = content.get("allow")
    rooms = [
        a["room_id"]
        for a in (allow if isinstance(allow, list) else [])
        if isinstance(a, dict)
        and a.get("type") == "m.room_membership"
        and isinstance(a.get("room_id"), str)
    ]
    return (rule if isinstance(rule, str) else None), rooms


def _world_readable(row: RoomSummaryRow) -> bool:
    visibility = row.state.get("m.room.history_visibility", {}).get("history_visibility")
    return visibility == "world_readable"


def open_to_anyone(row: RoomSummaryRow) -> bool:
    """World-readable, or joinable or knockable by anyone: what guests and
    unauthenticated requesters may see."""
    if _world_readable(row):
        return True
    version = KNOWN_ROOM_VERSIONS.get(row.room_version)
    rule, _ = join_rules(row)
    if rule in _OPEN_RULES:
        return True
    if version is None:
        return False
    return (rule == "knock" and version.knock_join_rule) or (
        rule == "knock_restricted" and version.knock_restricted_join_rule
    )


def restricted_to(row: RoomSummaryRow) -> list[str]:
    """The rooms whose members may join, when the room's rule is restricted."""
    version = KNOWN_ROOM_VERSIONS.get(row.room_version)
    rule, allowed = join_rules(row)
    if version is None:
        return []
    if (rule == "restricted" and version.restricted_join_rule) or (
        rule == "knock_restricted" and version.knock_restricted_join_rule
    ):
        return allowed
    return []


def accessible_to_user(row: RoomSummaryRow, joined_rooms: Collection[str]) -> bool:
    """May the user (joined to `joined_rooms`) see this room?"""
    if row.membership in ("join", "invite"):
        return True
    if open_to_anyone(row):
        return True
    return any(r in joined_rooms for r in restricted_to(row))


def accessible_to_server(
    row: RoomSummaryRow, server_in_room: bool, server_in_allowed_room: bool
) -> bool:
    """May another server see this room (for its users, whom it then checks
    itself)? As Synapse: open rooms, rooms it has a member (or an invitee)
    in, and restricted rooms whose allowed rooms it has a member in."""
    return open_to_anyone(row) or server_in_room or server_in_allowed_room


def remote_accessible(
    entry: Mapping[str, Any], membership: str | None, joined_rooms: Collection[str] | None
) -> bool:
    """May a requester see a room that another server summarised? `membership`
    is what we know of the user's membership there, `joined_rooms` None for
    unauthenticated requests. As in Synapse, a knock rule counts whatever
    the room version (a summary need not name it)."""
    if entry.get("world_readable") is True:
        return True
    if entry.get("join_rule", "public") in ("public", "knock", "knock_restricted"):
        return True
    if joined_rooms is None:
        return False
    if membership in ("join", "invite"):
        return True
    allowed = entry.get("allowed_room_ids")
    return isinstance(allowed, list) and any(r in joined_rooms for r in allowed)


def summary_entry(row: RoomSummaryRow) -> dict[str, Any]:
    """A room's summary as the hierarchy and the room summary show it
    (without `children_state`, which only the hierarchy adds)."""
    entry = summary_fields(row)
    entry["room_version"] = row.room_version
    allowed = restricted_to(row)
    if allowed:
        entry["allowed_room_ids"] = allowed
    algorithm = row.state.get("m.room.encryption", {}).get("algorithm")
    if isinstance(algorithm, str):
        entry["encryption"] = algorithm
    return entry
