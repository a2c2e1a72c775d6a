"""Properties every state resolution must have, on random forks of a room.

Hypothesis grows two to four forks from a common point of the standard room
(with Bob and Charlie promoted to 50). Each fork is a short run of random
state changes by random members: topics, names, power levels changes, kicks,
bans, leaves, joins and join rules changes, allowed or not, with timestamps
that often tie. The states after the fork tips are then resolved.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from homeserver.events.event import StateKey
from homeserver.events.state_res import resolve_state
from tests.events.test_state_res_support import (
    ALICE,
    BAN,
    BOB,
    CHARLIE,
    EVELYN,
    JOIN,
    JOIN_RULES,
    LEAVE,
    MEMBER,
    NAME,
    POWER_LEVELS,
    TOPIC,
    ZARA,
    RoomDag,
    standard_room,
)

USERS = [ALICE, BOB, CHARLIE, ZARA, EVELYN]

action = st.tuples(
    st.sampled_from(["topic", "name", "power", "kick", "ban", "leave", "join", "rules"]),
    st.sampled_from(USERS),
    st.sampled_from(USERS),
    st.sampled_from([0, 50, 100]),
    st.integers(min_value=100, max_value=104),
)
forks = st.lists(st.lists(action, max_size=4), min_size=2, max_size=4)


def _grow(room_version: str, fork_actions: list[list[tuple[Any, ...]]]) -> RoomDag:
    dag = standard_room(room_version)
    alice = {} if dag.room_version.privileged_creators else {ALICE: 100}
    levels = {"users": {**alice, BOB: 50, CHARLIE: 50}}
    dag.add("PA", POWER_LEVELS, ALICE, levels, state_key="")
    for f, fork in enumerate(fork_actions):
        prev = "PA"
        for n, (kind, sender, target, level, ts) in enumerate(fork):
            name = f"F{f}E{n}"
            if kind in ("topic", "name"):
                event_type = TOPIC if kind == "topic" else NAME
                dag.add(name, event_type, sender, {kind: name}, state_key="", prev=[prev], ts=ts)
            elif kind == "power":
                users = {**levels["users"], target: level}
                if dag.room_version.privileged_creators:
                    users.pop(ALICE, None)  # creators may not be listed
                content = {"users": users}
                dag.add(name, POWER_LEVELS, sender, content, state_key="", prev=[prev], ts=ts)
            elif kind == "rules":
                rule = {0: "public", 50: "invite", 100: "knock"}[level]
                content = {"join_rule": rule}
                dag.add(name, JOIN_RULES, sender, content, state_key="", prev=[prev], ts=ts)
            else:
                membership = {"kick": LEAVE, "ban": BAN, "leave": LEAVE, "join": JOIN}[kind]
                if kind in ("leave", "join"):
                    target = sender
                dag.add(name, MEMBER, sender, membership, state_key=target, prev=[prev], ts=ts)
            prev = name
        dag.state_after[f"$tip{f}"] = dag.state_after["$" + prev]
    return dag


def _tips(dag: RoomDag, count: int) -> list[dict[StateKey, str]]:
    return [dag.state_after[f"$tip{f}"] for f in range(count)]


@settings(max_examples=150, deadline=None)
@given(
    room_version=st.sampled_from(["1", "2", "10", "12"]),
    fork_actions=forks,
    data=st.data(),
)
def test_order_of_state_sets_does_not_matter(
    room_version: str, fork_actions: list[list[tuple[Any, ...]]], data: st.DataObject
) -> None:
    dag = _grow(room_version, fork_actions)
    sets = _tips(dag, len(fork_actions))
    shuffled = data.draw(st.permutations(sets))
    expected = resolve_state(dag.room_version, sets, dag.events.get)
    assert resolve_state(dag.room_version, shuffled, dag.events.get) == expected


@settings(max_examples=150, deadline=None)
@given(room_version=st.sampled_from(["1", "2", "10", "12"]), fork_actions=forks)
def test_unconflicted_state_is_kept(
    room_version: str, fork_actions: list[list[tuple[Any, ...]]]
) -> None:
    dag = _grow(room_version, fork_actions)
    sets = _tips(dag, len(fork_actions))
    resolved = resolve_state(dag.room_version, sets, dag.events.get)
    first, *others = sets
    for key, event_id in first.items():
        if all(other.get(key) == event_id for other in others):
            assert resolved[key] == event_id


@settings(max_examples=100, deadline=None)
@given(room_version=st.sampled_from(["1", "2", "10", "12"]), fork_actions=forks)
def test_one_state_set_resolves_to_itself(
    room_version: str, fork_actions: list[list[tuple[Any, ...]]]
) -> None:
    dag = _grow(room_version, fork_actions)
    for state in _tips(dag, len(fork_actions)):
        assert resolve_state(dag.room_version, [state], dag.events.get) == state
        assert resolve_state(dag.room_version, [state, dict(state)], dag.events.get) == state
