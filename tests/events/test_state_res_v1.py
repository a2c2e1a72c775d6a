"""State resolution v1 (room version 1) on hand-built state sets.

The base room: Alice created it (power 100, from IPOWER), join rule public,
Bob and Charlie joined with power 0. Each test gives two state sets that
differ in a few keys, with chosen depths, and works out the winner with the
room 1 algorithm: power levels, then join rules, then memberships (oldest
first, each next one kept while the auth rules allow it), then the rest
(the deepest event the auth rules allow).
"""

from __future__ import annotations

import hashlib
from typing import Any

from homeserver.events.event import Event, StateKey
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.events.state_res import resolve_state
from tests.events.factory import make_event
from tests.events.test_state_res_support import (
    ALICE,
    BAN,
    BOB,
    CHARLIE,
    CREATE,
    JOIN,
    JOIN_RULES,
    MEMBER,
    POWER_LEVELS,
    TOPIC,
)

V1 = KNOWN_ROOM_VERSIONS["1"]
PL_KEY = (POWER_LEVELS, "")
TOPIC_KEY = (TOPIC, "")


class Room:
    def __init__(self) -> None:
        self.events: dict[str, Event] = {}
        self.base: dict[StateKey, str] = {}
        self.add("create", CREATE, ALICE, {"creator": ALICE}, depth=1, auth=[])
        self.add("IMA", MEMBER, ALICE, JOIN, state_key=ALICE, depth=2, auth=["create"])
        self.add("IPOWER", POWER_LEVELS, ALICE, {"users": {ALICE: 100}}, depth=3)
        self.add("IJR", JOIN_RULES, ALICE, {"join_rule": "public"}, depth=4)
        self.add("IMB", MEMBER, BOB, JOIN, state_key=BOB, depth=5)
        self.add("IMC", MEMBER, CHARLIE, JOIN, state_key=CHARLIE, depth=6)

    def add(
        self,
        name: str,
        type: str,
        sender: str,
        content: dict[str, Any],
        *,
        state_key: str = "",
        depth: int,
        auth: list[str] | None = None,
        base: bool = True,
    ) -> str:
        """Add a state event; base events also go into the shared base state."""
        event_id = f"${name}:example.org"
        auth_ids = [f"${a}:example.org" for a in (auth if auth is not None else ["create"])]
        event = make_event(
            type,
            sender,
            content,
            state_key=state_key,
            room_version=V1,
            auth=auth_ids,
            depth=depth,
            event_id=event_id,
        )
        self.events[event_id] = event
        if base:
            self.base[event.state_tuple] = event_id
        return event_id

    def fork(self, name: str, type: str, sender: str, content: dict[str, Any], **kw: Any) -> str:
        return self.add(name, type, sender, content, base=False, **kw)

    def resolve(self, *changes: dict[StateKey, str]) -> dict[StateKey, str]:
        sets = [{**self.base, **change} for change in changes]
        return resolve_state(V1, sets, self.events.get)


def test_keys_in_only_some_sets_are_not_conflicts() -> None:
    """Room 1 takes the union: a key only one set has is simply kept."""
    room = Room()
    topic = room.fork("T", TOPIC, ALICE, {"topic": "t"}, depth=7)
    state = room.resolve({TOPIC_KEY: topic}, {})
    assert state == {**room.base, TOPIC_KEY: topic}


def test_power_levels_newer_change_kept_when_allowed() -> None:
    """P1 (depth 7, Alice makes Bob 50) then P2 (depth 8, Bob makes Charlie 50).

    Sorted by ascending depth, P1 is taken, and P2 is allowed in the state
    with P1 (Bob's 50 meets the power levels level and Charlie goes no
    higher), so P2 wins.
    """
    room = Room()
    p1 = room.fork("P1", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 50}}, depth=7)
    p2_levels = {"users": {ALICE: 100, BOB: 50, CHARLIE: 50}}
    p2 = room.fork("P2", POWER_LEVELS, BOB, p2_levels, depth=8)
    assert room.resolve({PL_KEY: p1}, {PL_KEY: p2})[PL_KEY] == p2
    assert room.resolve({PL_KEY: p2}, {PL_KEY: p1})[PL_KEY] == p2


def test_power_levels_stop_at_first_disallowed() -> None:
    """P1 (depth 7, Alice) is taken; P2 (depth 8, Charlie at 0) is not allowed, so P1 stays."""
    room = Room()
    p1 = room.fork("P1", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 50}}, depth=7)
    p2 = room.fork("P2", POWER_LEVELS, CHARLIE, {"users": {ALICE: 100, CHARLIE: 100}}, depth=8)
    assert room.resolve({PL_KEY: p1}, {PL_KEY: p2})[PL_KEY] == p1


def test_membership_ban_after_join() -> None:
    """Bob's member key: his join (depth 5) then Alice's ban (depth 9): the ban is allowed."""
    room = Room()
    ban = room.fork("MB", MEMBER, ALICE, BAN, state_key=BOB, depth=9)
    assert room.resolve({}, {(MEMBER, BOB): ban})[(MEMBER, BOB)] == ban


def test_membership_join_after_ban_refused() -> None:
    """The ban (depth 7) is oldest and taken; Bob's later join (depth 9) fails as he is banned."""
    room = Room()
    ban = room.fork("MB", MEMBER, ALICE, BAN, state_key=BOB, depth=7)
    rejoin = room.fork("RB", MEMBER, BOB, JOIN, state_key=BOB, depth=9)
    state = room.resolve({(MEMBER, BOB): ban}, {(MEMBER, BOB): rejoin})
    assert state[(MEMBER, BOB)] == ban


def test_other_key_deepest_allowed_wins() -> None:
    """Topics: Bob's (depth 9) is deepest but Bob has 0 < 50; Alice's (depth 7) wins."""
    room = Room()
    alice = room.fork("TA", TOPIC, ALICE, {"topic": "a"}, depth=7)
    bob = room.fork("TB", TOPIC, BOB, {"topic": "b"}, depth=9)
    assert room.resolve({TOPIC_KEY: alice}, {TOPIC_KEY: bob})[TOPIC_KEY] == alice


def test_other_key_uses_resolved_power_levels() -> None:
    """Power levels are resolved first: P1 makes Bob 50, so his deeper topic is allowed."""
    room = Room()
    p1 = room.fork("P1", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 50}}, depth=7)
    alice = room.fork("TA", TOPIC, ALICE, {"topic": "a"}, depth=8)
    bob = room.fork("TB", TOPIC, BOB, {"topic": "b"}, depth=9)
    state = room.resolve({TOPIC_KEY: alice}, {PL_KEY: p1, TOPIC_KEY: bob})
    assert state[PL_KEY] == p1
    assert state[TOPIC_KEY] == bob


def test_other_key_same_depth_lowest_sha1_wins() -> None:
    """Two allowed topics at the same depth: the lower sha1(event_id) wins."""
    room = Room()
    a = room.fork("TA", TOPIC, ALICE, {"topic": "a"}, depth=8)
    b = room.fork("TB", TOPIC, ALICE, {"topic": "b"}, depth=8)
    expected = min((a, b), key=lambda e: hashlib.sha1(e.encode()).hexdigest())
    assert room.resolve({TOPIC_KEY: a}, {TOPIC_KEY: b})[TOPIC_KEY] == expected
    assert room.resolve({TOPIC_KEY: b}, {TOPIC_KEY: a})[TOPIC_KEY] == expected


def test_other_key_none_allowed_keeps_shallowest() -> None:
    """Neither Bob's (depth 9) nor Charlie's (depth 8) topic is allowed: the shallowest stays."""
    room = Room()
    bob = room.fork("TB", TOPIC, BOB, {"topic": "b"}, depth=9)
    charlie = room.fork("TC", TOPIC, CHARLIE, {"topic": "c"}, depth=8)
    assert room.resolve({TOPIC_KEY: bob}, {TOPIC_KEY: charlie})[TOPIC_KEY] == charlie


def test_three_sets_and_unknown_events() -> None:
    """Three sets; a candidate the caller cannot load drops out of its conflict."""
    room = Room()
    a = room.fork("TA", TOPIC, ALICE, {"topic": "a"}, depth=7)
    unknown = "$gone:example.org"
    state = room.resolve({TOPIC_KEY: a}, {TOPIC_KEY: unknown}, {TOPIC_KEY: a})
    assert state[TOPIC_KEY] == a
    assert TOPIC_KEY not in room.resolve({TOPIC_KEY: unknown}, {TOPIC_KEY: "$other:x"})
