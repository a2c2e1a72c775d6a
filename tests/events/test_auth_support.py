"""A tiny room simulator for the auth rule tests (holds no tests itself).

`Room` keeps a state map and appends events one by one, authorising each
against the current state, so a test reads as the story of a room: alice
creates it, bob joins, alice bans bob, ... and then one last event is checked
for the outcome the test is about.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from homeserver.events.auth import check_auth
from homeserver.events.errors import AuthError
from homeserver.events.event import Event, StateKey
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from tests.events.factory import make_event

ALICE = "@alice:a.example"
BOB = "@bob:b.example"
CAROL = "@carol:c.example"
DAVE = "@dave:a.example"

ALL_VERSIONS = list(KNOWN_ROOM_VERSIONS)


def versions(first: int = 1, last: int = 12) -> list[str]:
    """Room version identifiers first..last inclusive."""
    return [str(v) for v in range(first, last + 1)]


def make_create(
    version: str,
    sender: str = ALICE,
    content: dict[str, Any] | None = None,
    *,
    room_id: str | None = None,
    prev: tuple[str, ...] = (),
) -> Event:
    """A create event shaped as its room version requires: `creator` in the
    content up to room 10, and from room 12 no room_id in the PDU (the room id
    is derived from the event id).
    """
    rv = KNOWN_ROOM_VERSIONS[version]
    content = dict(content) if content is not None else {}
    content.setdefault("room_version", version)
    if not rv.implicit_room_creator:
        content.setdefault("creator", sender)
    if rv.room_id_from_create_event:
        event = make_event(
            "m.room.create", sender, content, state_key="", room_version=rv, room_id="!", prev=prev
        )
        pdu = {k: v for k, v in event.pdu.items() if k != "room_id"}
        return attrs.evolve(event, room_id="!" + event.event_id[1:], pdu=pdu)
    return make_event(
        "m.room.create",
        sender,
        content,
        state_key="",
        room_version=rv,
        room_id=room_id or "!room:" + sender.split(":", 1)[1],
        prev=prev,
    )


def assert_denied(rv: RoomVersion, event: Event, state: dict[StateKey, Event], rule: str) -> None:
    with pytest.raises(AuthError) as info:
        check_auth(rv, event, state)
    assert info.value.rule == rule, info.value


class Room:
    """A room's state, grown one authorised event at a time."""

    def __init__(
        self, version: str, creator: str = ALICE, create_content: dict[str, Any] | None = None
    ) -> None:
        self.version = version
        self.rv = KNOWN_ROOM_VERSIONS[version]
        self.create = make_create(version, creator, create_content)
        check_auth(self.rv, self.create, {})
        self.room_id = self.create.room_id
        self.state: dict[StateKey, Event] = {("m.room.create", ""): self.create}
        self.last = self.create

    @classmethod
    def standard(
        cls,
        version: str,
        join_rule: str = "public",
        power_levels: dict[str, Any] | None = None,
        creator: str = ALICE,
        create_content: dict[str, Any] | None = None,
    ) -> Room:
        """Created by `creator`, who joins, sets power levels (`power_levels`,
        plus the creator at 100 before room 12, where creators are not listed)
        and the join rule.
        """
        room = cls(version, creator, create_content)
        room.send("m.room.member", creator, {"membership": "join"}, state_key=creator)
        levels: dict[str, Any] = dict(power_levels or {})
        users = {} if room.rv.privileged_creators else {creator: 100}
        levels["users"] = {**users, **levels.get("users", {})}
        room.send("m.room.power_levels", creator, levels, state_key="")
        room.send("m.room.join_rules", creator, {"join_rule": join_rule}, state_key="")
        return room

    def event(
        self,
        type: str,
        sender: str,
        content: dict[str, Any] | None = None,
        *,
        state_key: str | None = None,
        event_id: str | None = None,
        redacts: str | None = None,
        prev: tuple[str, ...] | None = None,
    ) -> Event:
        """An event following the last one, not yet checked nor applied."""
        return make_event(
            type,
            sender,
            content or {},
            state_key=state_key,
            room_version=self.rv,
            room_id=self.room_id,
            prev=(self.last.event_id,) if prev is None else prev,
            event_id=event_id,
            redacts=redacts,
        )

    def check(self, event: Event) -> None:
        check_auth(self.rv, event, self.state)

    def denied(self, event: Event, rule: str) -> None:
        assert_denied(self.rv, event, self.state, rule)

    def apply(self, event: Event) -> Event:
        """Authorise `event` and make it part of the room."""
        self.check(event)
        self.last = event
        if event.state_key is not None:
            self.state[(event.type, event.state_key)] = event
        return event

    def send(
        self,
        type: str,
        sender: str,
        content: dict[str, Any] | None = None,
        *,
        state_key: str | None = None,
    ) -> Event:
        return self.apply(self.event(type, sender, content, state_key=state_key))

    def member(self, user: str, membership: str, sender: str | None = None, **extra: Any) -> Event:
        """A membership event for `user` (sent by `user` unless `sender` is given)."""
        return self.event(
            "m.room.member", sender or user, {"membership": membership, **extra}, state_key=user
        )

    def set_member(self, user: str, membership: str, sender: str | None = None) -> Event:
        return self.apply(self.member(user, membership, sender))

    def force(self, event: Event) -> None:
        """Put `event` into the state without checking it (to set up odd states)."""
        assert event.state_key is not None
        self.state[(event.type, event.state_key)] = event
        self.last = event
