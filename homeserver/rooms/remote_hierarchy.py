"""Spaces and rooms this server has no member in, as other servers summarise
them (the federation hierarchy, `GET /_matrix/federation/v1/hierarchy`).

The room services see only `RemoteHierarchy` (the federation client lives in
`federation/`); `parse_answer` checks another server's answer before any of
it is shown to a client, keeping only well-formed entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import attrs

from homeserver.rooms.space_children import order_key, valid_child

# Children of one space an answer may bring (the rest is ignored).
MAX_CHILDREN = 100


@attrs.frozen
class RemoteRoom:
    # The room's summary, without children_state.
    entry: dict[str, Any]
    # Its m.space.child events (stripped), valid and in the spec's order.
    children: tuple[dict[str, Any], ...]
    # {room id: summary} of the children the answering server could summarise.
    children_summaries: dict[str, dict[str, Any]]


class RemoteHierarchy(Protocol):
    async def hierarchy(
        self, servers: Sequence[str], room_id: str, suggested_only: bool
    ) -> RemoteRoom | None:
        """The room as the first of `servers` that answers describes it; None
        if none does."""
        ...


def _summary(value: Any, room_id: str | None = None) -> dict[str, Any] | None:
    """A room summary from another server, if it has the fields the spec requires."""
    if not isinstance(value, dict):
        return None
    rid = value.get("room_id")
    if not isinstance(rid, str) or (room_id is not None and rid != room_id):
        return None
    if type(value.get("num_joined_members")) is not int:
        return None
    if not isinstance(value.get("world_readable"), bool):
        return None
    if not isinstance(value.get("guest_can_join"), bool):
        return None
    return {k: v for k, v in value.items() if k != "children_state"}


def parse_answer(answer: Any, room_id: str, suggested_only: bool) -> RemoteRoom | None:
    """Another server's federation hierarchy answer for `room_id`, checked."""
    if not isinstance(answer, dict):
        return None
    room = answer.get("room")
    entry = _summary(room, room_id)
    if entry is None:
        return None
    assert isinstance(room, dict)
    raw_children = room.get("children_state")
    children = [
        c
        for c in (raw_children if isinstance(raw_children, list) else [])[:MAX_CHILDREN]
        if valid_child(c) and (not suggested_only or c["content"].get("suggested") is True)
    ]
    children.sort(key=order_key)
    raw = answer.get("children")
    summaries = {}
    for child in (raw if isinstance(raw, list) else [])[:MAX_CHILDREN]:
        summary = _summary(child)
        if summary is not None:
            summaries[summary["room_id"]] = summary
    return RemoteRoom(entry, tuple(children), summaries)
