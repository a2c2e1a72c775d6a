"""State resolution v2 and v2.1 on hand-built room DAGs.

Every test grows forks from the standard room (see `standard_room`: Alice
created it and has power 100; Bob, Charlie and Zara joined a public room) and
resolves the state where they merge. The docstrings work the expected result
out by hand, following the spec's algorithm: power events first in reverse
topological power order, then the rest in mainline order, each applied only
if the auth rules allow it in the state built so far.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    MESSAGE,
    NAME,
    POWER_LEVELS,
    TOPIC,
    ZARA,
    RoomDag,
    changed,
    ids,
    standard_room,
)


def test_ban_vs_power_levels() -> None:
    """Alice bans Bob while Bob, a moderator, sends power levels.

    Fork 1: PA (Alice makes Bob 50), MA (Alice joins again), MB (Alice bans
    Bob). Fork 2, from PA: PB (Bob resends the same power levels).

    Conflicted: power levels {PA, PB}, Alice {IMA, MA}, Bob {IMB, MB}. The
    power events PA, PB and MB are sorted with the conflicted events of their
    auth chains. Kahn's algorithm takes Alice's IMA, PA and MA first (her
    100 beats Bob's 0 at IMB), then IMB; then MB and PB are both ready and
    Alice (100) outranks Bob (50), so MB is applied before PB. Bob is banned
    by then, so PB fails: the state is PA, MA, MB.
    """
    dag = standard_room()
    dag.add("PA", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 50}}, state_key="")
    dag.add("MA", MEMBER, ALICE, JOIN, state_key=ALICE)
    dag.add("MB", MEMBER, ALICE, BAN, state_key=BOB)
    dag.add("PB", POWER_LEVELS, BOB, {"users": {ALICE: 100, BOB: 50}}, state_key="", prev=["PA"])

    assert changed(dag, dag.state_at("MB", "PB")) == ids(dag, "PA", "MA", "MB")


def test_topic_reset() -> None:
    """A ban must not let an old fork's topic come back in the banned user's favour.

    Fork 1: T1 (Alice's topic), PA (Bob 50), T2 (Bob's topic), MB (Alice bans
    Bob). Fork 2 stops at T1.

    Conflicted: topic {T1, T2}, power levels {IPOWER, PA}, Bob {IMB, MB}.
    Power events IPOWER, PA and MB all pass. The topics are then in mainline
    order of PA ([PA, IPOWER]): T1 cites IPOWER (position 1) and T2 cites PA
    (position 0), so T1 comes first and T2 last. T2 fails since Bob is
    banned, so the topic is T1.
    """
    dag = standard_room()
    dag.add("T1", TOPIC, ALICE, {"topic": "one"}, state_key="")
    dag.add("PA", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 50}}, state_key="")
    dag.add("T2", TOPIC, BOB, {"topic": "two"}, state_key="")
    dag.add("MB", MEMBER, ALICE, BAN, state_key=BOB)

    assert changed(dag, dag.state_at("MB", "T1")) == ids(dag, "T1", "PA", "MB")


def test_join_rule_evasion() -> None:
    """Evelyn joins while Alice makes the room invite-only.

    JR is a power event and is applied first; Evelyn's join ME is applied
    after, against join rule "invite", and fails as she has no invite. Her
    membership key existed only in fork 2, so it is conflicted and absent.
    """
    dag = standard_room()
    dag.add("JR", JOIN_RULES, ALICE, {"join_rule": "invite"}, state_key="")
    dag.add("ME", MEMBER, EVELYN, JOIN, state_key=EVELYN, prev=["START"])

    assert changed(dag, dag.state_at("JR", "ME")) == ids(dag, "JR")


def test_offtopic_power_levels() -> None:
    """A chain of power levels changes beats the older power levels it builds on.

    Fork 1: PA (Alice makes Bob 50), PB (Bob makes Charlie 50), PC (Charlie
    lowers himself to 0). Fork 2 stops at PA. PB and the joins of Bob and
    Charlie (cited by PB and PC) are in the auth difference; the order is
    PA, IMB, PB, IMC, PC and each change is allowed (no one goes above their
    sender's level), so PC wins.
    """
    dag = standard_room()
    dag.add("PA", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 50}}, state_key="")
    dag.add("PB", POWER_LEVELS, BOB, {"users": {ALICE: 100, BOB: 50, CHARLIE: 50}}, state_key="")
    dag.add("PC", POWER_LEVELS, CHARLIE, {"users": {ALICE: 100, BOB: 50, CHARLIE: 0}}, state_key="")

    assert changed(dag, dag.state_at("PC", "PA")) == ids(dag, "PC")


def _topic_forks(dag: RoomDag) -> None:
    """T1, PA1 (Bob 50), T2, PA2 (Bob 0) by Alice; from PA1: PB (Bob), T3 (Bob's topic)."""
    dag.add("T1", TOPIC, ALICE, {"topic": "1"}, state_key="")
    dag.add("PA1", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 50}}, state_key="")
    dag.add("T2", TOPIC, ALICE, {"topic": "2"}, state_key="")
    dag.add("PA2", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 0}}, state_key="")
    dag.add("PB", POWER_LEVELS, BOB, {"users": {ALICE: 100, BOB: 50}}, state_key="", prev=["PA1"])
    dag.add("T3", TOPIC, BOB, {"topic": "3"}, state_key="")


def test_demotion_races_state_change_by_demoted_user() -> None:
    """Alice demotes Bob (PA2) while Bob resends power levels and sets a topic.

    Conflicted: power levels {PA2, PB}, topic {T2, T3}. PA2 (Alice, 100) is
    sorted before PB (Bob, 50) and demotes Bob, so PB fails. In mainline
    order of PA2 ([PA2, PA1, IPOWER]) T2 cites PA1 (position 1) and T3 cites
    PB, whose own power levels auth event is PA1 (position 1): a tie broken
    by timestamp, T2 first. T3 then fails because Bob now has 0 < 50. The
    state is PA2, T2.
    """
    dag = standard_room()
    _topic_forks(dag)

    assert changed(dag, dag.state_at("PA2", "T3")) == ids(dag, "PA2", "T2")


def test_topic_after_merge() -> None:
    """A topic set after an earlier merge beats a topic from before it.

    MZ1 merges the forks of the previous test (state PA2, T2); Alice then
    sets T4. Merging T4 with MZ1 conflicts only on the topic {T2, T4}; PA2,
    in the auth chain of T4 but of no event of MZ1's state, is in the auth
    difference and is applied again. T2 cites PA1 (mainline position 1 of
    [PA2, PA1, IPOWER]) and T4 cites PA2 (position 0), so T4 is applied
    last and wins.
    """
    dag = standard_room()
    _topic_forks(dag)
    dag.add("MZ1", MESSAGE, ZARA, {"body": "merge"}, prev=["PA2", "T3"])
    dag.add("T4", TOPIC, ALICE, {"topic": "4"}, state_key="")

    assert changed(dag, dag.state_at("T4", "MZ1")) == ids(dag, "T4", "PA2")


def test_mainline_sort_beats_timestamps() -> None:
    """The topic based on the newer power levels wins although it was sent first.

    Fork 1: T1, PA1 (Bob 50), T2, PA2 (only 100 may send power levels), T3
    (Bob's topic). Fork 2, from PA1: PB (Bob's power levels), T4 (Alice's
    topic, sent after T3). PB fails after PA2. Mainline of PA2 is [PA2, PA1,
    IPOWER]: T3 cites PA2 (position 0), T4 cites PB, which leads to PA1
    (position 1). T4 is applied first and T3 last, and Bob's 50 is enough for
    a topic, so T3 wins.
    """
    dag = standard_room()
    dag.add("T1", TOPIC, ALICE, {"topic": "1"}, state_key="")
    dag.add("PA1", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 50}}, state_key="")
    dag.add("T2", TOPIC, ALICE, {"topic": "2"}, state_key="")
    pa2 = {"users": {ALICE: 100, BOB: 50}, "events": {POWER_LEVELS: 100}}
    dag.add("PA2", POWER_LEVELS, ALICE, pa2, state_key="")
    dag.add("T3", TOPIC, BOB, {"topic": "3"}, state_key="")
    dag.add("PB", POWER_LEVELS, BOB, {"users": {ALICE: 100, BOB: 50}}, state_key="", prev=["PA1"])
    dag.add("T4", TOPIC, ALICE, {"topic": "4"}, state_key="")

    assert changed(dag, dag.state_at("T3", "T4")) == ids(dag, "T3", "PA2")


def test_ban_races_message_and_state_change() -> None:
    """Alice bans Bob (a moderator) while Bob sends a message and renames the room.

    Conflicted: Bob {IMB, MB}, name {NB} (only fork 2 has it). The ban is a
    power event and is applied first; the name comes after and fails because
    Bob is banned. Bob's message is not state and changes nothing.
    """
    dag = standard_room()
    dag.add("PA", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 50}}, state_key="")
    dag.add("MB", MEMBER, ALICE, BAN, state_key=BOB)
    dag.add("MSG", MESSAGE, BOB, {"body": "hi"}, prev=["PA"])
    dag.add("NB", NAME, BOB, {"name": "Bob's room"}, state_key="")

    assert changed(dag, dag.state_at("MB", "NB")) == ids(dag, "PA", "MB")


def test_demotion_races_rename() -> None:
    """Alice takes Bob's moderator power away while he renames the room.

    Conflicted: power levels {PA, PD}, name {NB}. PD is applied (Alice 100
    lowers Bob from 50 to 0); NB is then checked against PD and Bob's 0 is
    below state_default 50, so the name is dropped.
    """
    dag = standard_room()
    dag.add("PA", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 50}}, state_key="")
    dag.add("PD", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 0}}, state_key="")
    dag.add("NB", NAME, BOB, {"name": "Bob's room"}, state_key="", prev=["PA"])

    assert changed(dag, dag.state_at("PD", "NB")) == ids(dag, "PD")


def _bob_promoted(level: int) -> RoomDag:
    """PA: Alice gives Bob `level`; PB: Bob resends the same power levels.

    Bob's PB cites his join IMB and PA cites Alice's join IMA, so both joins
    are in the auth chain of anything that cites PB: they are in every fork's
    full auth chain and stay out of the auth difference.
    """
    dag = standard_room()
    levels = {"users": {ALICE: 100, BOB: level}}
    dag.add("PA", POWER_LEVELS, ALICE, levels, state_key="")
    dag.add("PB", POWER_LEVELS, BOB, levels, state_key="")
    return dag


def test_concurrent_join_rules_lower_power_applied_last() -> None:
    """Alice (100) and Bob (50) change the join rules at the same time.

    The full conflicted set is {JA, JB}, with no auth path between them, so
    the power ordering sorts Alice's JA first although Bob's JB has the
    earlier timestamp. Both are allowed (Bob's 50 meets state_default), so
    JB, applied last, wins.
    """
    dag = _bob_promoted(50)
    dag.add("JA", JOIN_RULES, ALICE, {"join_rule": "invite"}, state_key="", ts=200)
    dag.add("JB", JOIN_RULES, BOB, {"join_rule": "knock"}, state_key="", prev=["PB"], ts=100)

    assert changed(dag, dag.state_at("JA", "JB")) == ids(dag, "PB", "JB")


def test_concurrent_join_rules_equal_power_by_timestamp() -> None:
    """With equal power, the join rules change with the later timestamp wins.

    Alice and Bob both have 100; JB (ts 100) is sorted before JA (ts 200),
    both are allowed, so JA is applied last. Whichever fork comes first in
    the input does not matter.
    """
    dag = _bob_promoted(100)
    dag.add("JA", JOIN_RULES, ALICE, {"join_rule": "invite"}, state_key="", ts=200)
    dag.add("JB", JOIN_RULES, BOB, {"join_rule": "knock"}, state_key="", prev=["PB"], ts=100)

    assert changed(dag, dag.state_at("JA", "JB")) == ids(dag, "PB", "JA")
    assert changed(dag, dag.state_at("JB", "JA")) == ids(dag, "PB", "JA")


def test_unconflicted_event_in_auth_difference() -> None:
    """An unconflicted event can be in the auth difference and change the order.

    Only Alice's PA precedes the forks. Bob's join IMB is in both state sets
    but, as the spec defines auth chains (an event's auth events,
    recursively, not the event itself), it is only in the full auth chain
    of fork 2, through JB. So the full conflicted set is {JA, JB, IMB} and
    JB must wait for IMB, whose sender Bob had power 0 when he joined: the
    order is JA (Alice, 100), IMB, JB, and JB wins although it is the
    earlier one and Bob has the same power as Alice.
    """
    dag = standard_room()
    dag.add("PA", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 100}}, state_key="")
    dag.add("JA", JOIN_RULES, ALICE, {"join_rule": "invite"}, state_key="", ts=200)
    dag.add("JB", JOIN_RULES, BOB, {"join_rule": "knock"}, state_key="", prev=["PA"], ts=100)

    assert changed(dag, dag.state_at("JA", "JB")) == ids(dag, "PA", "JB")


def test_three_forks() -> None:
    """Three forks: Alice sets a topic, Bob renames the room, Alice demotes Bob.

    Conflicted: topic {TA}, name {NB}, power levels {PA, PC} (each key
    missing from some fork is conflicted). The power events PA then PC pass.
    TA and NB both cite PA, position 1 in the mainline [PC, PA, IPOWER], so
    they go by timestamp: TA passes, NB fails because PC left Bob with 0.
    """
    dag = standard_room()
    dag.add("PA", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 50}}, state_key="")
    dag.add("TA", TOPIC, ALICE, {"topic": "Alice's"}, state_key="", prev=["PA"])
    dag.add("NB", NAME, BOB, {"name": "Bob's"}, state_key="", prev=["PA"])
    dag.add("PC", POWER_LEVELS, ALICE, {"users": {ALICE: 100}}, state_key="", prev=["PA"])

    expected = ids(dag, "PC", "TA")
    for tips in (("TA", "NB", "PC"), ("PC", "NB", "TA"), ("NB", "PC", "TA")):
        assert changed(dag, dag.state_at(*tips)) == expected


def test_four_forks_with_kick() -> None:
    """Four forks: a kick, a leave, a join and a topic, all compatible.

    Alice kicks Charlie (KC), Zara leaves (LZ), Evelyn joins (JE), Bob (50)
    sets the topic (TB). Nothing revokes anything needed by the others, so
    every fork's change survives.
    """
    dag = standard_room()
    dag.add("PA", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 50}}, state_key="")
    dag.add("KC", MEMBER, ALICE, LEAVE, state_key=CHARLIE, prev=["PA"])
    dag.add("LZ", MEMBER, ZARA, LEAVE, state_key=ZARA, prev=["PA"])
    dag.add("JE", MEMBER, EVELYN, JOIN, state_key=EVELYN, prev=["PA"])
    dag.add("TB", TOPIC, BOB, {"topic": "Bob's"}, state_key="", prev=["PA"])

    state = dag.state_at("KC", "LZ", "JE", "TB")
    assert changed(dag, state) == ids(dag, "PA", "KC", "LZ", "JE", "TB")


def _creator_race(room_version: str) -> tuple[RoomDag, dict[StateKey, str]]:
    """Alice (the creator) demotes Bob (100) while Bob kicks Charlie (50).

    PA gives Bob 100 and Charlie 50 (and Alice 100 where creators are not
    privileged); Bob (PB) then Charlie (PC) resend it, so that the joins of
    all three are in every fork's full auth chain. Fork 1: PD (Alice sets
    Bob to 0, ts 20). Fork 2: KC (Bob kicks Charlie, ts 10). The full
    conflicted set is PD and KC, plus PC and Charlie's join IMC that fork 2
    still has; those two are auth ancestors of both racing events and come
    first.
    """
    dag = standard_room(room_version)
    alice = {} if dag.room_version.privileged_creators else {ALICE: 100}
    levels = {"users": {**alice, BOB: 100, CHARLIE: 50}}
    dag.add("PA", POWER_LEVELS, ALICE, levels, state_key="")
    dag.add("PB", POWER_LEVELS, BOB, levels, state_key="")
    dag.add("PC", POWER_LEVELS, CHARLIE, levels, state_key="")
    demoted = {"users": {**alice, BOB: 0, CHARLIE: 50}}
    dag.add("PD", POWER_LEVELS, ALICE, demoted, state_key="", ts=20)
    dag.add("KC", MEMBER, BOB, LEAVE, state_key=CHARLIE, prev=["PC"], ts=10)
    return dag, dag.state_at("PD", "KC")


def test_v12_creator_outranks_everyone() -> None:
    """Room 12: the creator's infinite power orders her demotion first.

    The create event is in no event's auth_events; it is still part of the
    resolution through the room id. PD and KC are both power events with no
    dependency between them. Alice is a creator, so her power is infinite
    and PD is sorted before KC despite its later timestamp. PD is allowed (a
    creator may demote anyone) and leaves Bob at 0, below the kick level
    50, so KC fails: Charlie stays, and the power levels are PD.
    """
    dag, state = _creator_race("12")
    assert all("$CREATE" not in event.auth_event_ids for event in dag.events.values())
    assert state[("m.room.create", "")] == "$CREATE"
    assert changed(dag, state) == ids(dag, "PD")


def test_v11_same_race_without_creator_privilege() -> None:
    """Room 11, the same race: Alice and Bob both have 100.

    The tie in power goes to timestamps: KC (ts 10) is applied first and
    Charlie is kicked. PD then fails, as a user may not lower someone whose
    level equals their own. The state is PC and KC: the opposite of room 12.
    """
    dag, state = _creator_race("11")
    assert changed(dag, state) == ids(dag, "PC", "KC")


def _stale_power_levels(room_version: str) -> tuple[RoomDag, list[dict[StateKey, str]]]:
    """State sets where Bob's power levels PB rest on a membership the sets no longer have.

    PA (Alice gives Bob 100) precedes two events: LB (Bob leaves) and PB
    (Bob's power levels giving Charlie 50, authorised by Bob's join IMB).
    Set 1 is the state after LB; set 2 is the state after PB with Bob's
    leave applied too, as a server that saw both would hold it. Bob's
    membership LB is unconflicted; the power levels {PA, PB} are conflicted.
    """
    dag = standard_room(room_version)
    alice = {} if dag.room_version.privileged_creators else {ALICE: 100}
    dag.add("PA", POWER_LEVELS, ALICE, {"users": {**alice, BOB: 100}}, state_key="")
    dag.add("LB", MEMBER, BOB, LEAVE, state_key=BOB)
    pb = {"users": {**alice, BOB: 100, CHARLIE: 50}}
    dag.add("PB", POWER_LEVELS, BOB, pb, state_key="", prev=["PA"])
    set_1 = dag.state_after["$LB"]
    set_2 = {**dag.state_after["$PB"], (MEMBER, BOB): "$LB"}
    return dag, [set_1, set_2]


def test_v2_iterative_checks_start_from_unconflicted_state() -> None:
    """Room 11: PB is checked against the unconflicted state, where Bob has left.

    PA then PB are the sorted power events. The partially resolved state
    starts as the unconflicted state map, so PB sees Bob's leave LB and
    fails: the power levels are PA.
    """
    dag, state_sets = _stale_power_levels("11")
    state = resolve_state(dag.room_version, state_sets, dag.events.get)
    assert state[(POWER_LEVELS, "")] == "$PA"
    assert state[(MEMBER, BOB)] == "$LB"


def test_v21_iterative_checks_start_from_empty_state() -> None:
    """Room 12: the partially resolved state starts empty.

    PA is applied; PB then finds no membership for Bob in the partial state
    and takes it from its own auth events (IMB, a join), so it is allowed
    and the power levels are PB. The unconflicted state, Bob's leave
    included, is put back on top at the end.
    """
    dag, state_sets = _stale_power_levels("12")
    state = resolve_state(dag.room_version, state_sets, dag.events.get)
    assert state[(POWER_LEVELS, "")] == "$PB"
    assert state[(MEMBER, BOB)] == "$LB"


def test_rejected_auth_event_is_not_used() -> None:
    """Room 12 as above, but Bob's join IMB was rejected.

    A rejected auth event is not used by the iterative auth checks, so PB
    finds no membership for Bob and fails: the power levels are PA.
    """
    dag, state_sets = _stale_power_levels("12")
    state = resolve_state(
        dag.room_version, state_sets, dag.events.get, is_rejected=lambda e: e == "$IMB"
    )
    assert state[(POWER_LEVELS, "")] == "$PA"


def test_precomputed_auth_chains_give_the_same_result() -> None:
    """`get_auth_chain` from an index answers exactly like the walk."""
    dag = standard_room()
    _topic_forks(dag)

    def get_auth_chain(event_ids: Iterable[str]) -> set[str]:
        chain: set[str] = set()
        stack = list(event_ids)
        while stack:
            for auth_id in dag.events[stack.pop()].auth_event_ids:
                if auth_id not in chain:
                    chain.add(auth_id)
                    stack.append(auth_id)
        return chain

    state_sets = dag.state_sets("PA2", "T3")
    walked = resolve_state(dag.room_version, state_sets, dag.events.get)
    indexed = resolve_state(dag.room_version, state_sets, dag.events.get, get_auth_chain)
    assert indexed == walked


def test_no_conflict_and_trivial_inputs() -> None:
    """No state sets give no state; identical sets resolve to themselves."""
    dag = standard_room()
    version = dag.room_version
    start = dag.state_after["$START"]
    assert resolve_state(version, [], dag.events.get) == {}
    assert resolve_state(version, [start], dag.events.get) == start
    assert resolve_state(version, [start, dict(start), start], dag.events.get) == start


def test_unknown_conflicted_event_is_left_out() -> None:
    """An event the caller could not load cannot be authorised, so it is left out."""
    dag = standard_room()
    start = dag.state_after["$START"]
    with_unknown = {**start, (TOPIC, ""): "$unknown"}
    state = resolve_state(dag.room_version, [start, with_unknown], dag.events.get)
    assert state == start


def test_deep_power_levels_history() -> None:
    """Thousands of power levels events in a row resolve without deep recursion.

    P0 makes Bob 50. Fork 1: Bob sets the topic (TB). Fork 2: Alice sends
    3000 power levels events P1..P3000 in a row, each giving Bob a level
    between 50 and 99. The auth chain of P3000 is 3000 power levels deep;
    they are all in the full conflicted set, sorted in chain order and all
    allowed. TB cites P0, 3000 steps down the mainline of P3000, and Bob
    still has 50 after P3000, so the topic stays.
    """
    dag = standard_room()
    dag.add("P0", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 50}}, state_key="")
    dag.add("TB", TOPIC, BOB, {"topic": "Bob's"}, state_key="")
    dag.add("P1", POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 51}}, state_key="", prev=["P0"])
    for n in range(2, 3001):
        levels = {"users": {ALICE: 100, BOB: 50 + n % 50}}
        dag.add(f"P{n}", POWER_LEVELS, ALICE, levels, state_key="")

    state = dag.state_at("P3000", "TB")
    assert state[(POWER_LEVELS, "")] == "$P3000"
    assert state[(TOPIC, "")] == "$TB"
