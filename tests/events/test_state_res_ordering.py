"""The building blocks of state resolution v2, each on a tiny auth DAG.

Events here are built directly with chosen auth events; `P` gives Alice 100
and Bob and Charlie 50, so the power ordering has something to rank.
"""

from __future__ import annotations

from homeserver.events.event import Event
from homeserver.events.state_res.common import EventGraph, is_power_event
from homeserver.events.state_res.v2 import (
    auth_difference,
    conflicted_state_subgraph,
    mainline_order,
    reverse_topological_power_order,
    separate,
)
from tests.events.factory import make_event
from tests.events.test_state_res_support import (
    ALICE,
    BAN,
    BOB,
    CHARLIE,
    CREATE,
    JOIN,
    JOIN_RULES,
    LEAVE,
    MEMBER,
    POWER_LEVELS,
    TOPIC,
)

VERSION = "10"


class Graph:
    """Events by id, plus an `EventGraph` over them."""

    def __init__(self) -> None:
        self.events: dict[str, Event] = {}
        self.add("$create", CREATE, ALICE, {"creator": ALICE}, state_key="", auth=[])
        users = {ALICE: 100, BOB: 50, CHARLIE: 50}
        self.add("$P", POWER_LEVELS, ALICE, {"users": users}, state_key="", auth=["$create"])

    def add(
        self,
        event_id: str,
        type: str,
        sender: str,
        content: dict[str, object] | None = None,
        *,
        state_key: str | None = "",
        auth: list[str] | None = None,
        ts: int = 0,
    ) -> Event:
        event = make_event(
            type,
            sender,
            dict(content or {}),
            state_key=state_key,
            room_version=VERSION,
            auth=["$create", "$P"] if auth is None else auth,
            ts=ts,
            event_id=event_id,
        )
        self.events[event_id] = event
        return event

    def graph(self) -> EventGraph:
        return EventGraph(self.events.get)

    def order(self, event_ids: set[str]) -> list[str]:
        ordered = reverse_topological_power_order(
            self.events["$P"].room_version, event_ids, self.graph()
        )
        return [event.event_id for event in ordered]


def test_power_order_ranks_power_then_timestamp_then_id() -> None:
    """Kahn's algorithm picks the smallest ready event at every step.

    Ready at first: X2 (Alice, 100, ts 5), $b (Bob, 50, ts 1), $c (Charlie,
    50, ts 1). X2 goes first on power; $b beats $c on event id. Taking $b
    makes X4 (Alice, 100, ts 0, cites $b) ready, and it outranks $c.
    """
    g = Graph()
    g.add("$b", TOPIC, BOB, ts=1)
    g.add("$X2", TOPIC, ALICE, ts=5)
    g.add("$c", TOPIC, CHARLIE, ts=1)
    g.add("$X4", TOPIC, ALICE, auth=["$create", "$P", "$b"], ts=0)

    assert g.order({"$b", "$X2", "$c", "$X4"}) == ["$X2", "$b", "$X4", "$c"]


def test_power_order_respects_auth_paths_through_outside_events() -> None:
    """An auth path that leaves the set still orders its ends.

    $A (Alice, 100) cites $B, which is not in the set and cites $C (Bob, 50).
    $C is in $A's auth chain, so it must come first despite Bob's lower power.
    """
    g = Graph()
    g.add("$C", TOPIC, BOB, ts=1)
    g.add("$B", TOPIC, BOB, auth=["$create", "$P", "$C"], ts=2)
    g.add("$A", TOPIC, ALICE, auth=["$create", "$P", "$B"], ts=3)

    assert g.order({"$A", "$C"}) == ["$C", "$A"]


def test_power_order_without_power_levels_uses_creator() -> None:
    """With no power levels in its auth events, the room creator has 100, others 0."""
    g = Graph()
    g.add("$bob", TOPIC, BOB, auth=["$create"], ts=1)
    g.add("$alice", TOPIC, ALICE, auth=["$create"], ts=2)

    assert g.order({"$bob", "$alice"}) == ["$alice", "$bob"]


def test_mainline_order() -> None:
    """Events based on older power levels come first; unknown ancestry before all.

    Mainline of P2: [P2 (0), P1 (1), $P (2)]. $none cites no power levels
    (position infinity). $old and $side (via PX, off the mainline, whose
    parent is $P) have position 2 and go by timestamp. $mid cites P1 (1),
    $new cites P2 (0).
    """
    g = Graph()
    g.add("$P1", POWER_LEVELS, ALICE, {"users": {ALICE: 100}})
    g.add("$P2", POWER_LEVELS, ALICE, {"users": {ALICE: 100}}, auth=["$create", "$P1"])
    g.add("$PX", POWER_LEVELS, ALICE, {"users": {ALICE: 100}})
    events = [
        g.add("$new", TOPIC, ALICE, auth=["$create", "$P2"], ts=1),
        g.add("$mid", TOPIC, ALICE, auth=["$create", "$P1"], ts=1),
        g.add("$side", TOPIC, ALICE, auth=["$create", "$PX"], ts=3),
        g.add("$old", TOPIC, ALICE, ts=2),
        g.add("$none", TOPIC, ALICE, auth=["$create"], ts=9),
    ]
    ordered = mainline_order(events, "$P2", g.graph())
    assert [e.event_id for e in ordered] == ["$none", "$old", "$side", "$mid", "$new"]


def test_mainline_order_without_power_levels() -> None:
    """With no resolved power levels every position is infinite: timestamps decide."""
    g = Graph()
    events = [g.add("$late", TOPIC, ALICE, ts=2), g.add("$early", TOPIC, ALICE, ts=1)]
    assert [e.event_id for e in mainline_order(events, None, g.graph())] == ["$early", "$late"]
    assert mainline_order([], "$P", g.graph()) == []


def test_separate_treats_missing_keys_as_conflicted() -> None:
    """A key is unconflicted only if every set has it with the same event."""
    s1 = {(TOPIC, ""): "$t", (MEMBER, BOB): "$b1", (JOIN_RULES, ""): "$j"}
    s2 = {(TOPIC, ""): "$t", (MEMBER, BOB): "$b2"}
    unconflicted, conflicted = separate([s1, s2])
    assert unconflicted == {(TOPIC, ""): "$t"}
    assert conflicted == {(MEMBER, BOB): {"$b1", "$b2"}, (JOIN_RULES, ""): {"$j"}}


def test_auth_difference() -> None:
    """Union minus intersection of the full auth chains.

    Set 1 holds $m1 (cites $a1, which cites $P); set 2 holds $m2 (cites
    $P). Both full chains hold $create and $P; only set 1's holds $a1.
    """
    g = Graph()
    g.add("$a1", TOPIC, ALICE)
    g.add("$m1", MEMBER, BOB, JOIN, state_key=BOB, auth=["$create", "$P", "$a1"])
    g.add("$m2", MEMBER, BOB, LEAVE, state_key=BOB)
    s1 = {(MEMBER, BOB): "$m1", (CREATE, ""): "$create"}
    s2 = {(MEMBER, BOB): "$m2", (CREATE, ""): "$create"}
    unconflicted, conflicted = separate([s1, s2])
    assert auth_difference([s1, s2], unconflicted, conflicted, g.graph()) == {"$a1"}


def test_conflicted_state_subgraph() -> None:
    """Events on auth paths between conflicted events, and nothing else.

    $c1 -> $mid -> $c2 -> $below: $mid lies between two conflicted events.
    $below and $P are only below them, and $off cites $c2 but no conflicted
    event cites $off.
    """
    g = Graph()
    g.add("$below", TOPIC, ALICE)
    g.add("$c2", TOPIC, ALICE, auth=["$create", "$P", "$below"])
    g.add("$mid", MEMBER, ALICE, JOIN, state_key=ALICE, auth=["$create", "$P", "$c2"])
    g.add("$c1", TOPIC, ALICE, auth=["$create", "$P", "$mid"])
    g.add("$off", TOPIC, ALICE, auth=["$create", "$P", "$c2"])
    assert conflicted_state_subgraph({"$c1", "$c2"}, g.graph()) == {"$c1", "$mid", "$c2"}


def test_power_events() -> None:
    """Power levels and join rules (the spec names only the types, so any
    state key), and memberships taken away by someone else."""
    g = Graph()
    kick = g.add("$kick", MEMBER, ALICE, LEAVE, state_key=BOB)
    ban = g.add("$ban", MEMBER, ALICE, BAN, state_key=BOB)
    leave = g.add("$leave", MEMBER, BOB, LEAVE, state_key=BOB)
    join = g.add("$join", MEMBER, BOB, JOIN, state_key=BOB)
    rules = g.add("$jr", JOIN_RULES, ALICE, {"join_rule": "public"})
    odd_key = g.add("$odd", POWER_LEVELS, ALICE, state_key="x")
    topic = g.add("$topic", TOPIC, ALICE)
    powers = (kick, ban, g.events["$P"], rules, odd_key)
    assert [is_power_event(e) for e in powers] == [True] * 5
    assert [is_power_event(e) for e in (leave, join, topic)] == [False] * 3


def test_deep_auth_chain_walks() -> None:
    """Walks and orderings over a 20,000 event deep chain need no recursion."""
    g = Graph()
    previous = "$P"
    for n in range(20_000):
        previous = g.add(f"$t{n}", TOPIC, ALICE, auth=["$create", previous]).event_id
    graph = g.graph()
    assert len(graph.auth_chain([previous])) == 20_001
    members = {"$t0", previous}
    assert g.order(members) == ["$t0", previous]
    assert conflicted_state_subgraph(members, graph) == {f"$t{n}" for n in range(20_000)}
