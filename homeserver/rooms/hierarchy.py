"""The space hierarchy (GET /rooms/{roomId}/hierarchy) over the rooms this server knows.

The tree is read level by level, a few queries per level for all its rooms,
down to `max_depth` and at most `MAX_ROOMS_WALKED` rooms; the page is then cut
from a depth-first walk of it, which is the order the spec and Synapse give.
The pagination token carries the request's parameters and the number of rooms
already returned, so the server keeps no session for it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from homeserver.errors import MatrixError, forbidden, invalid_param
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.requester import Requester
from homeserver.rooms.directory import summary_fields
from homeserver.strict_json import parse_strict_json
from storage.directory import DirectoryStore, RoomSummaryRow
from storage.events import EventStore
from storage.rooms import RoomStore

SPACE_CHILD = "m.space.child"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
# Both the default and the most a request may ask for.
MAX_DEPTH = 20
MAX_ROOMS_WALKED = 1000
_MAX_ORDER_LENGTH = 50


@attrs.frozen
class _Room:
    summary: RoomSummaryRow
    # Stripped m.space.child events with a valid via, in the spec's order.
    children: tuple[dict[str, Any], ...] = ()


@attrs.frozen
class _Token:
    root: str
    max_depth: int
    suggested_only: bool
    offset: int

    def encode(self) -> str:
        data = [self.root, self.max_depth, self.suggested_only, self.offset]
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> _Token:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            root, depth, suggested, offset = parse_strict_json(raw)
        except (binascii.Error, ValueError, TypeError, MatrixError):
            raise invalid_param("Unknown pagination token") from None
        if not (
            isinstance(root, str)
            and type(depth) is int
            and type(suggested) is bool
            and type(offset) is int
            and offset >= 0
        ):
            raise invalid_param("Unknown pagination token")
        return cls(root, depth, suggested, offset)


def _join_rules(row: RoomSummaryRow) -> tuple[str | None, list[str]]:
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


def _accessible(row: RoomSummaryRow, joined_rooms: set[str]) -> bool:
    """May the user see this room in a hierarchy? (the spec's list, in the response schema)."""
    if row.membership in ("join", "invite"):
        return True
    if row.state.get("m.room.history_visibility", {}).get("history_visibility") == (
        "world_readable"
    ):
        return True
    version = KNOWN_ROOM_VERSIONS[row.room_version]
    rule, allowed = _join_rules(row)
    if rule == "public":
        return True
    if rule == "knock" and version.knock_join_rule:
        return True
    if rule == "knock_restricted" and version.knock_restricted_join_rule:
        return True
    return (
        rule == "restricted"
        and version.restricted_join_rule
        and not joined_rooms.isdisjoint(allowed)
    )


def _order_key(child: Mapping[str, Any]) -> tuple[int, str, int, str]:
    """The spec's ordering of space children: valid `order` first, then timestamp, then id."""
    order = child["content"].get("order")
    valid = (
        isinstance(order, str)
        and len(order) <= _MAX_ORDER_LENGTH
        and all(" " <= c <= "~" for c in order)
    )
    return (
        0 if valid else 1,
        order if valid else "",
        child["origin_server_ts"],
        child["state_key"],
    )


def _has_valid_via(content: Mapping[str, Any]) -> bool:
    via = content.get("via")
    return isinstance(via, list) and bool(via) and all(isinstance(v, str) and v for v in via)


def _entry(room: _Room, *, with_children: bool) -> dict[str, Any]:
    row = room.summary
    entry = summary_fields(row)
    entry["room_version"] = row.room_version
    rule, allowed = _join_rules(row)
    if rule in ("restricted", "knock_restricted") and allowed:
        entry["allowed_room_ids"] = allowed
    algorithm = row.state.get("m.room.encryption", {}).get("algorithm")
    if isinstance(algorithm, str):
        entry["encryption"] = algorithm
    entry["children_state"] = list(room.children) if with_children else []
    return entry


class SpaceHierarchy:
    def __init__(self, events: EventStore, rooms: RoomStore, directory: DirectoryStore) -> None:
        self._events = events
        self._rooms = rooms
        self._directory = directory

    async def hierarchy(
        self,
        requester: Requester,
        room_id: str,
        *,
        suggested_only: bool,
        limit: int | None,
        max_depth: int | None,
        from_token: str | None,
    ) -> dict[str, Any]:
        if limit is not None and limit < 1:
            raise invalid_param("limit must be greater than zero")
        if max_depth is not None and max_depth < 0:
            raise invalid_param("max_depth must not be negative")
        depth = MAX_DEPTH if max_depth is None else min(max_depth, MAX_DEPTH)
        limit = min(limit or DEFAULT_LIMIT, MAX_LIMIT)
        offset = 0
        if from_token is not None:
            token = _Token.decode(from_token)
            if token.root != room_id:
                raise invalid_param("The pagination token is for another room")
            if (token.max_depth, token.suggested_only) != (depth, suggested_only):
                raise invalid_param(
                    "suggested_only and max_depth cannot change on paginated requests"
                )
            offset = token.offset
        tree = await self._load(requester.user_id, room_id, depth, suggested_only)
        if tree.get(room_id) is None:
            raise forbidden("You are not allowed to view this room")
        walked = self._walk(tree, room_id, depth, offset + limit + 1)
        body: dict[str, Any] = {"rooms": walked[offset : offset + limit]}
        if len(walked) > offset + limit:
            body["next_batch"] = _Token(room_id, depth, suggested_only, offset + limit).encode()
        return body

    async def _load(
        self, user_id: str, root: str, max_depth: int, suggested_only: bool
    ) -> dict[str, _Room | None]:
        """Every room within `max_depth` of the root: its summary if the user may see it."""
        joined_rooms = set(await self._rooms.rooms_for_user(user_id))
        tree: dict[str, _Room | None] = {}
        level, depth = [root], 0
        while level:
            summaries = await self._directory.summaries(level, user_id)
            for room_id in level:
                row = summaries.get(room_id)
                tree[room_id] = _Room(row) if row and _accessible(row, joined_rooms) else None
            if depth >= max_depth:
                break
            spaces = [
                r
                for r in level
                if (room := tree[r]) is not None
                and room.summary.state.get("m.room.create", {}).get("type") == "m.space"
            ]
            children = await self._children(spaces, suggested_only)
            next_level: list[str] = []
            for space in spaces:
                room = tree[space]
                assert room is not None
                tree[space] = attrs.evolve(room, children=tuple(children.get(space, ())))
                for child in children.get(space, ()):
                    child_id = child["state_key"]
                    if child_id in tree or child_id in next_level:
                        continue
                    if len(tree) + len(next_level) >= MAX_ROOMS_WALKED:
                        break
                    next_level.append(child_id)
            level, depth = next_level, depth + 1
        return tree

    async def _children(
        self, spaces: Iterable[str], suggested_only: bool
    ) -> dict[str, list[dict[str, Any]]]:
        """The spaces' valid m.space.child events, stripped, each space's in order."""
        pairs = await self._directory.state_of_type(spaces, SPACE_CHILD)
        ids = [event_id for _, event_id in pairs]
        found = await self._events.get_events(ids)
        redacted = await self._events.redactions_of(ids)
        children: dict[str, list[dict[str, Any]]] = {}
        for space, event_id in pairs:
            stored = found.get(event_id)
            if stored is None or event_id in redacted:
                continue
            event = stored.event
            if not _has_valid_via(event.content):
                continue
            if suggested_only and event.content.get("suggested") is not True:
                continue
            children.setdefault(space, []).append(
                {
                    "type": SPACE_CHILD,
                    "state_key": event.state_key,
                    "content": dict(event.content),
                    "sender": event.sender,
                    "origin_server_ts": event.origin_server_ts,
                }
            )
        for listed in children.values():
            listed.sort(key=_order_key)
        return children

    @staticmethod
    def _walk(
        tree: Mapping[str, _Room | None], root: str, max_depth: int, wanted: int
    ) -> list[dict[str, Any]]:
        """Up to `wanted` entries of the depth-first walk from the root, each room once."""
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        stack = [(root, 0)]
        while stack and len(out) < wanted:
            room_id, depth = stack.pop()
            if room_id in seen:
                continue
            seen.add(room_id)
            room = tree.get(room_id)
            if room is None:
                continue
            with_children = depth < max_depth
            out.append(_entry(room, with_children=with_children))
            if with_children:
                stack.extend((c["state_key"], depth + 1) for c in reversed(room.children))
        return out
