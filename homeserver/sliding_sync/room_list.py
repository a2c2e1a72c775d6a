"""Which rooms a sliding sync list holds, in which order: pure functions over
what storage/sliding_sync.py read for all of the user's rooms at once.

The rooms of the server's list (MSC4186 "Lists"): those the user is joined
to, invited to or knocked on; rooms they were kicked or banned from after
having joined (always, as the user may not know); and rooms they left
themselves only while this connection still knows them in another
membership, so that it hears of the leave once. Forgotten rooms and invites
from ignored users never are.

Order: by `bump_stamp`, the stream position of the room's last event of a
bumping type (the MSC's list, as Synapse counts them), or, for rooms the
user is not joined to, of their membership event; the newest first, ties
broken by room id so the order is stable.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import attrs

from homeserver.sliding_sync.model import ListConfig, ListFilters
from storage.sliding_sync import RoomFacts
from storage.sync import Membership

# MSC4186 `bump_stamp`: the event types that count as activity.
BUMP_TYPES = (
    "m.room.create",
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.call.invite",
    "m.poll.start",
    "m.beacon_info",
)


@attrs.frozen
class ListRoom:
    """A room of the user's server list."""

    membership: Membership
    bump_stamp: int
    # The position the user's view of the room ends at: now for joined rooms,
    # their membership event otherwise.
    position: int
    room_type: str | None
    encrypted: bool
    name: str | None

    @property
    def room_id(self) -> str:
        return self.membership.room_id


@attrs.frozen
class AccountView:
    """What of the user's account data the filters and `is_dm` read."""

    dm_rooms: frozenset[str]
    tags: Mapping[str, frozenset[str]]
    # Children of the spaces the lists' filters name (joined spaces only).
    space_children: Mapping[str, frozenset[str]]


def account_view(
    direct: Mapping[str, Any],
    tags: Mapping[str, Any],
    space_children: Mapping[str, frozenset[str]],
) -> AccountView:
    dm = {r for rooms in direct.values() if isinstance(rooms, list) for r in rooms}
    return AccountView(
        frozenset(r for r in dm if isinstance(r, str)),
        {
            room: frozenset(content["tags"])
            for room, content in tags.items()
            if isinstance(content.get("tags"), dict)
        },
        space_children,
    )


def in_server_list(
    user_id: str,
    m: Membership,
    ignored: Collection[str],
    known_as: str | None,
    block_invites: bool = False,
) -> bool:
    """Whether the room is in the user's server list (see the module docstring);
    `known_as` is the membership this connection last sent the room with."""
    if m.membership == "join" or m.membership == "knock":
        return True
    if m.membership == "invite":
        # No invites for a user who blocks them (MSC4380).
        return not block_invites and m.sender not in ignored
    if m.membership not in ("leave", "ban") or m.forgotten:
        return False
    # memberships() from position 0: a join anywhere in the room's history.
    been_joined = m.joined_in_range
    removed = m.membership == "ban" or m.sender != user_id
    if removed and been_joined:
        return True
    return known_as is not None and known_as != m.membership


def list_room(m: Membership, facts: RoomFacts | None) -> ListRoom:
    joined = m.membership == "join"
    position = m.stream_ordering
    if joined and facts is not None and facts.last_event is not None:
        position = max(position, facts.last_event)
    bump = facts.bump if joined and facts is not None and facts.bump is not None else None
    return ListRoom(
        m,
        bump_stamp=max(bump if bump is not None else m.stream_ordering, 0),
        position=position,
        room_type=facts.room_type if facts is not None else None,
        encrypted=facts.encrypted if facts is not None else False,
        name=facts.name if facts is not None else None,
    )


def order_key(room: ListRoom) -> tuple[int, str]:
    """Where a room goes in the list: a total order, as room ids are unique."""
    return -room.bump_stamp, room.membership.room_id


def ordered(rooms: Sequence[ListRoom]) -> list[ListRoom]:
    return sorted(rooms, key=order_key)


# A list without filters holds the whole server list (`matches` is true of
# every room), which then needs no test per room.
NO_FILTERS = ListFilters()


def matches(room: ListRoom, filters: ListFilters, account: AccountView) -> bool:
    f = filters
    if f.is_dm is not None and (room.room_id in account.dm_rooms) != f.is_dm:
        return False
    if f.is_encrypted is not None and room.encrypted != f.is_encrypted:
        return False
    if f.room_name_like is not None and (
        not isinstance(room.name, str) or f.room_name_like.casefold() not in room.name.casefold()
    ):
        return False
    if f.is_invite is not None and (room.membership.membership == "invite") != f.is_invite:
        return False
    if f.spaces is not None and not any(
        room.room_id in account.space_children.get(s, ()) for s in f.spaces
    ):
        return False
    if room.room_type in f.not_room_types:
        return False
    if f.room_types is not None and room.room_type not in f.room_types:
        return False
    tags = account.tags.get(room.room_id, frozenset())
    if not tags.isdisjoint(f.not_tags):
        return False
    return f.tags is None or not tags.isdisjoint(f.tags)


def window(rooms: Sequence[ListRoom], config: ListConfig) -> list[ListRoom]:
    """The rooms of a filtered, ordered list within its ranges."""
    if config.ranges is None:
        return list(rooms)
    chosen: dict[str, ListRoom] = {}
    for start, end in config.ranges:
        for room in rooms[start : end + 1]:
            chosen.setdefault(room.room_id, room)
    return list(chosen.values())
