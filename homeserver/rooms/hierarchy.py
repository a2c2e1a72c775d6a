"""The space hierarchy (GET /rooms/{roomId}/hierarchy).

The tree is read level by level, a few queries per level for all its rooms,
down to `max_depth` and at most `MAX_ROOMS_WALKED` rooms; the page is then cut
from a depth-first walk of it, which is the order the spec and Synapse give.
The pagination token carries the request's parameters and the number of rooms
already returned, so the server keeps no session for it.

Rooms this server has no member in are asked of the servers their
`m.space.child` event names (`via`), as the spec describes, through the
federation hierarchy (homeserver/rooms/remote_hierarchy.py): one request per
such space, the rooms of a level at once, at most `MAX_REMOTE_REQUESTS` in a
walk. A remote answer's children summaries stand for those children unless
they are spaces themselves (whose children only their own answer lists).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from homeserver.errors import MatrixError, forbidden, invalid_param
from homeserver.requester import Requester
from homeserver.rooms.remote_hierarchy import RemoteHierarchy, RemoteRoom
from homeserver.rooms.room_access import (
    accessible_to_user,
    remote_accessible,
    summary_entry,
)
from homeserver.rooms.space_children import SPACE_CHILD, has_valid_via, order_key
from homeserver.strict_json import parse_strict_json
from storage.directory import DirectoryStore
from storage.events import EventStore
from storage.room_servers import RoomServersStore
from storage.rooms import RoomStore

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
# Both the default and the most a request may ask for.
MAX_DEPTH = 20
MAX_ROOMS_WALKED = 1000
# Federation requests one walk may make.
MAX_REMOTE_REQUESTS = 20
SPACE = "m.space"


@attrs.frozen
class _Room:
    # The room's summary (without children_state).
    entry: dict[str, Any]
    # Stripped m.space.child events with a valid via, in the spec's order.
    children: tuple[dict[str, Any], ...] = ()

    @property
    def is_space(self) -> bool:
        return self.entry.get("room_type") == SPACE


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


def _entry(room: _Room, *, with_children: bool) -> dict[str, Any]:
    return {**room.entry, "children_state": list(room.children) if with_children else []}


class SpaceHierarchy:
    def __init__(
        self,
        events: EventStore,
        rooms: RoomStore,
        directory: DirectoryStore,
        *,
        access: RoomServersStore,
        server_name: str,
        remote: RemoteHierarchy | None = None,
    ) -> None:
        self._access = access
        self._events = events
        self._rooms = rooms
        self._directory = directory
        self._server_name = server_name
        # Other servers' spaces; None when this server does not federate.
        self._remote = remote

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
        # Where each room not yet read was seen: the via of its child event,
        # and the summary a remote space's answer gave of it.
        vias: dict[str, list[str]] = {}
        prefetched: dict[str, dict[str, Any]] = {}
        budget = [MAX_REMOTE_REQUESTS]
        level, depth = [root], 0
        while level:
            summaries = await self._directory.summaries(level, user_id)
            local = await self._local_rooms(level)
            remote_ids = [r for r in level if r not in local]
            for room_id in level:
                row = summaries.get(room_id)
                if room_id in local and row is not None:
                    room = (
                        _Room(summary_entry(row)) if accessible_to_user(row, joined_rooms) else None
                    )
                    tree[room_id] = room
            fetched = await self._fetch_remote(
                remote_ids, vias, prefetched, suggested_only, depth < max_depth, budget
            )
            memberships = await self._rooms_memberships(user_id, remote_ids)
            for room_id in remote_ids:
                found = fetched.get(room_id)
                visible = found is not None and remote_accessible(
                    found.entry, memberships.get(room_id), joined_rooms
                )
                tree[room_id] = _Room(found.entry, found.children) if visible else None
                if found is not None:
                    prefetched |= found.children_summaries
            if depth >= max_depth:
                break
            spaces = [r for r in level if (room := tree[r]) is not None and room.is_space]
            children = await self.children([s for s in spaces if s in local], suggested_only)
            next_level: list[str] = []
            for space in spaces:
                room = tree[space]
                assert room is not None
                if space in local:
                    room = attrs.evolve(room, children=tuple(children.get(space, ())))
                    tree[space] = room
                for child in room.children:
                    child_id = child["state_key"]
                    vias.setdefault(child_id, list(child["content"]["via"]))
                    if child_id in tree or child_id in next_level:
                        continue
                    if len(tree) + len(next_level) >= MAX_ROOMS_WALKED:
                        break
                    next_level.append(child_id)
            level, depth = next_level, depth + 1
        return tree

    async def _local_rooms(self, room_ids: list[str]) -> set[str]:
        """The rooms this server has a joined member in: those it can answer for."""
        if self._remote is None:
            return set(room_ids)
        return await self._access.rooms_with_server(room_ids, self._server_name)

    async def _rooms_memberships(self, user_id: str, room_ids: list[str]) -> dict[str, str]:
        if not room_ids:
            return {}
        return await self._access.memberships_of(user_id, room_ids)

    async def _fetch_remote(
        self,
        room_ids: list[str],
        vias: dict[str, list[str]],
        prefetched: dict[str, dict[str, Any]],
        suggested_only: bool,
        want_children: bool,
        budget: list[int],
    ) -> dict[str, RemoteRoom]:
        """Rooms this server is not in, from other servers: a child's summary
        from its space's answer when that will do (it is not a space whose
        children are wanted), else its own federation hierarchy."""
        if self._remote is None:
            return {}
        found: dict[str, RemoteRoom] = {}
        ask: list[str] = []
        for room_id in room_ids:
            known = prefetched.get(room_id)
            if known is not None and not (want_children and known.get("room_type") == SPACE):
                found[room_id] = RemoteRoom(known, (), {})
            elif vias.get(room_id) and budget[0] > 0:
                budget[0] -= 1
                ask.append(room_id)
        answers = await asyncio.gather(
            *(self._remote.hierarchy(vias[r], r, suggested_only) for r in ask)
        )
        for room_id, answer in zip(ask, answers, strict=True):
            if answer is not None:
                found[room_id] = answer
            elif room_id in prefetched:
                found[room_id] = RemoteRoom(prefetched[room_id], (), {})
        return found

    async def children(
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
            if not has_valid_via(event.content):
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
            listed.sort(key=order_key)
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
