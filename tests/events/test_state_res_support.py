"""A room DAG builder for the state resolution tests (no tests here).

`RoomDag` adds events one at a time, the way a server would: the state
before an event is the state after its single prev event, or the resolution
of the states after its prev events where the DAG merges, and its auth events
are picked from that state with the auth events selection. Events are not
checked on the way in, so that a fork can hold an event the merged state
must refuse; resolving at the merge point is what each test checks.
"""

from __future__ import annotations

from typing import Any

from homeserver.events.auth import auth_types_for_event
from homeserver.events.event import Event, StateKey
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.state_res import resolve_state
from tests.events.factory import make_event

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
CHARLIE = "@charlie:example.org"
EVELYN = "@evelyn:example.org"
ZARA = "@zara:example.org"

CREATE = "m.room.create"
MEMBER = "m.room.member"
POWER_LEVELS = "m.room.power_levels"
JOIN_RULES = "m.room.join_rules"
TOPIC = "m.room.topic"
NAME = "m.room.name"
MESSAGE = "m.room.message"

JOIN = {"membership": "join"}
BAN = {"membership": "ban"}
LEAVE = {"membership": "leave"}


class RoomDag:
    """Events named by short ids ("PA" is "$PA"), built in causal order."""

    def __init__(self, room_version: str = "10") -> None:
        self.room_version: RoomVersion = KNOWN_ROOM_VERSIONS[room_version]
        self.events: dict[str, Event] = {}
        self.state_after: dict[str, dict[StateKey, str]] = {}
        self.room_id = "!room:example.org"
        self._last: str | None = None
        self._ts = 0

    def add(
        self,
        name: str,
        type: str,
        sender: str,
        content: dict[str, Any] | None = None,
        *,
        state_key: str | None = None,
        prev: list[str] | None = None,
        ts: int | None = None,
    ) -> Event:
        """Add an event after `prev` (default: the last event added)."""
        event_id = "$" + name
        if type == CREATE and self.room_version.room_id_from_create_event:
            self.room_id = "!" + name
        if prev is None:
            prev = [] if self._last is None else [self._last]
        prev_ids = ["$" + p for p in prev]
        state_before = self.resolve(prev_ids) if prev_ids else {}
        self._ts += 1
        draft = self._make(event_id, type, sender, content, state_key, prev_ids, (), 0, 0)
        auth = sorted(
            state_before[key]
            for key in auth_types_for_event(self.room_version, draft)
            if key in state_before
        )
        depth = max((self.events[p].depth for p in prev_ids), default=0) + 1
        event = self._make(
            event_id,
            type,
            sender,
            content,
            state_key,
            prev_ids,
            auth,
            depth,
            self._ts if ts is None else ts,
        )
        self.events[event_id] = event
        state_after = dict(state_before)
        if state_key is not None:
            state_after[(type, state_key)] = event_id
        self.state_after[event_id] = state_after
        self._last = name
        return event

    def _make(
        self,
        event_id: str,
        type: str,
        sender: str,
        content: dict[str, Any] | None,
        state_key: str | None,
        prev: list[str],
        auth: list[str] | tuple[str, ...],
        depth: int,
        ts: int,
    ) -> Event:
        return make_event(
            type,
            sender,
            dict(content or {}),
            state_key=state_key,
            room_version=self.room_version,
            room_id=self.room_id,
            prev=prev,
            auth=auth,
            depth=depth,
            ts=ts,
            event_id=event_id,
        )

    def resolve(self, event_ids: list[str]) -> dict[StateKey, str]:
        """The state before an event whose prev events are `event_ids`."""
        return resolve_state(
            self.room_version, [self.state_after[e] for e in event_ids], self.events.get
        )

    def state_at(self, *names: str) -> dict[StateKey, str]:
        """The resolved state after the named fork tips."""
        return self.resolve(["$" + n for n in names])

    def state_sets(self, *names: str) -> list[dict[StateKey, str]]:
        return [self.state_after["$" + n] for n in names]


def standard_room(room_version: str = "10") -> RoomDag:
    """Alice creates a public room (power 100); Bob, Charlie and Zara join.

    The events are CREATE, IMA (Alice joins), IPOWER (Alice 100, everyone
    else the default 0), IJR (public), IMB, IMC, IMZ (joins) and START, a
    message every fork of the tests grows from.
    """
    dag = RoomDag(room_version)
    creator = {} if dag.room_version.implicit_room_creator else {"creator": ALICE}
    dag.add("CREATE", CREATE, ALICE, {"room_version": room_version, **creator}, state_key="")
    dag.add("IMA", MEMBER, ALICE, JOIN, state_key=ALICE)
    users = {} if dag.room_version.privileged_creators else {ALICE: 100}
    dag.add("IPOWER", POWER_LEVELS, ALICE, {"users": users}, state_key="")
    dag.add("IJR", JOIN_RULES, ALICE, {"join_rule": "public"}, state_key="")
    dag.add("IMB", MEMBER, BOB, JOIN, state_key=BOB)
    dag.add("IMC", MEMBER, CHARLIE, JOIN, state_key=CHARLIE)
    dag.add("IMZ", MEMBER, ZARA, JOIN, state_key=ZARA)
    dag.add("START", MESSAGE, ZARA, {"body": "start"})
    return dag


def changed(dag: RoomDag, state: dict[StateKey, str]) -> dict[StateKey, str]:
    """The entries of `state` that differ from the state at START."""
    start = dag.state_after["$START"]
    changes = {key: value for key, value in state.items() if start.get(key) != value}
    changes.update({key: "<removed>" for key in start if key not in state})
    return changes


def ids(dag: RoomDag, *names: str) -> dict[StateKey, str]:
    """A state map holding the named events, for comparing with `changed`."""
    return {dag.events["$" + n].state_tuple: "$" + n for n in names}
