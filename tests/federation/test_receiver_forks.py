"""A fork that demotes someone: on one branch a member with enough power
names the room, on the other a moderator takes his power away. Whatever the
order the branches arrive in, state resolution v2 applies the power levels
first, the name no longer passes auth, and the room's current state is the
new power levels without the name: the same state every other server has.
"""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.events.event import Event
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote
from tests.federation.remote_room import V1, RemoteRoom, serve_dag
from tests.federation.test_joins import make_join, send_join, sign_join
from tests.federation.test_receiver import local_room, timeline
from tests.federation.test_receiver_state import current_state, put_state, state_content

VERSIONS = ["10", "11", "12"]


@pytest.fixture(params=VERSIONS)
async def forked(
    request: pytest.FixtureRequest, fed_hs: RunningServer, remote_factory: Any
) -> tuple[RunningServer, str, RemoteRoom, dict[str, Any]]:
    """Alice's room of the version in the parameter, where the remote's bob
    (power 50: enough to name the room) and carol (power 75, which X makes
    enough to change the power levels: she may demote bob) joined, promoted by alice's power levels X, which the remote knows.
    Returns X's content too."""
    remote: ScriptedRemote = await remote_factory(start=False)
    holder: dict[str, RemoteRoom] = {}
    serve_dag(remote, holder)
    await remote.start()
    await remote.expect_keys_of(fed_hs)
    token, room_id = await local_room(fed_hs, version=request.param)
    holder["room"] = room = await RemoteRoom.join(fed_hs, remote, room_id)
    assert room.version.identifier == request.param
    await room.join_user("carol")
    levels = await state_content(fed_hs, token, room_id, "m.room.power_levels")
    levels["users"] = {**levels["users"], room.user("bob"): 50, room.user("carol"): 75}
    levels["events"] = {**levels["events"], "m.room.power_levels": 75}
    await room.learn(await put_state(fed_hs, token, room_id, "m.room.power_levels", levels))
    return fed_hs, token, room, levels


def branches(room: RemoteRoom, levels: dict[str, Any]) -> tuple[Event, Event]:
    """Bob's name change N and carol's demotion of bob D, both on X."""
    x = room.heads[0]
    name = room.build("m.room.name", {"name": "bob's name"}, state_key="", prev=[x], add=False)
    users = {u: p for u, p in levels["users"].items() if u != room.user("bob")}
    demotion = room.build(
        "m.room.power_levels",
        {**levels, "users": users},
        sender="carol",
        state_key="",
        prev=[x],
        add=False,
    )
    return name, demotion


async def served(room: RemoteRoom, event_id: str) -> dict[str, Any]:
    """The event as our server serves it over federation (never a rejected one)."""
    status, body = await room.remote.request(room.hs, "GET", f"{V1}/event/{event_id}")
    assert status == 200, body
    return body["pdus"][0]


async def state_ids_before(room: RemoteRoom, event_id: str) -> set[str]:
    """The state before one of our events, as our server serves it."""
    status, body = await room.remote.request(
        room.hs, "GET", f"{V1}/state_ids/{room.room_id}?event_id={event_id}"
    )
    assert status == 200, body
    return set(body["pdu_ids"])


@pytest.mark.parametrize("name_first", [True, False], ids=["name-first", "demotion-first"])
async def test_the_demotion_wins_whichever_branch_arrives_first(
    forked: tuple[RunningServer, str, RemoteRoom, dict[str, Any]], name_first: bool
) -> None:
    hs, token, room, levels = forked
    name, demotion = branches(room, levels)
    for pdu in [name, demotion] if name_first else [demotion, name]:
        status, body = await room.send([pdu])
        assert (status, body) == (200, {"pdus": {pdu.event_id: {}}})

    state = await current_state(hs, token, room.room_id)
    assert state[("m.room.power_levels", "")] == demotion.event_id
    assert ("m.room.name", "") not in state
    assert (
        room.user("bob")
        not in (await state_content(hs, token, room.room_id, "m.room.power_levels"))["users"]
    )
    # Both are stored and served: the name passed auth at its place in the DAG.
    assert (await served(room, name.event_id))["content"] == {"name": "bob's name"}
    assert (await served(room, demotion.event_id))["sender"] == room.user("carol")
    # Arriving first, the name was accepted and shown; arriving after the
    # demotion, it fails the current state: soft-failed, never shown.
    ids = [e["event_id"] for e in await timeline(hs, token, room.room_id)]
    assert demotion.event_id in ids
    assert (name.event_id in ids) == name_first

    # Alice's next event builds on the resolved state.
    topic = await put_state(hs, token, room.room_id, "m.room.topic", {"topic": "after the fork"})
    before = await state_ids_before(room, topic)
    assert demotion.event_id in before and name.event_id not in before
    state = await current_state(hs, token, room.room_id)
    assert state[("m.room.power_levels", "")] == demotion.event_id
    assert state[("m.room.topic", "")] == topic
    assert ("m.room.name", "") not in state


async def test_with_three_extremities_the_demotion_still_wins(
    forked: tuple[RunningServer, str, RemoteRoom, dict[str, Any]],
) -> None:
    """N (bob's name) and carol's topic T fork from X; D (carol demotes bob)
    arrives last on X as a third branch. The resolution of all three keeps
    D and T and drops N; alice's message then merges the three branches."""
    hs, token, room, levels = forked
    x = room.heads[0]
    name, demotion = branches(room, levels)
    topic = room.build(
        "m.room.topic", {"topic": "carol's topic"}, sender="carol", state_key="", prev=[x]
    )
    status, body = await room.send([name])
    assert (status, body) == (200, {"pdus": {name.event_id: {}}})
    status, body = await room.send([topic])
    assert (status, body) == (200, {"pdus": {topic.event_id: {}}})
    state = await current_state(hs, token, room.room_id)
    assert state[("m.room.name", "")] == name.event_id
    assert state[("m.room.topic", "")] == topic.event_id

    status, body = await room.send([demotion])
    assert (status, body) == (200, {"pdus": {demotion.event_id: {}}})
    state = await current_state(hs, token, room.room_id)
    assert state[("m.room.power_levels", "")] == demotion.event_id
    assert state[("m.room.topic", "")] == topic.event_id
    assert ("m.room.name", "") not in state

    status, sent = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room.room_id}/send/m.room.message/merge",
        token=token,
        json={"msgtype": "m.text", "body": "merging"},
    )
    assert status == 200, sent
    merge = await served(room, sent["event_id"])
    assert set(merge["prev_events"]) == {name.event_id, topic.event_id, demotion.event_id}
    before = await state_ids_before(room, sent["event_id"])
    assert {demotion.event_id, topic.event_id} <= before and name.event_id not in before
    assert await current_state(hs, token, room.room_id) == state
    ids = [e["event_id"] for e in await timeline(hs, token, room.room_id)]
    assert sent["event_id"] in ids


@pytest.mark.parametrize("forked", ["10"], indirect=True)
async def test_a_local_event_builds_on_the_state_of_its_own_prev_events(
    forked: tuple[RunningServer, str, RemoteRoom, dict[str, Any]],
) -> None:
    """More forward extremities than an event may cite: bob's name N (on X)
    and 20 branches of two messages each (on X, so deeper than N). Alice's
    message L cites the 20 deepest, not N: the state before L is that of its
    prev events (no name), and the room's current state is the resolution of
    L's branch with N's (the name stays, bob still may set it)."""
    hs, token, room, levels = forked
    x = room.heads[0]
    name, _ = branches(room, levels)
    chains = []
    for i in range(20):
        first = room.message(f"branch {i}", prev=[x], add=False)
        chains += [first, room.message(f"branch {i} again", prev=[first.event_id], add=False)]
    status, body = await room.send([name, *chains])
    assert status == 200 and all(v == {} for v in body["pdus"].values()), body
    assert (await current_state(hs, token, room.room_id))[("m.room.name", "")] == name.event_id

    status, sent = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room.room_id}/send/m.room.message/twenty",
        token=token,
        json={"msgtype": "m.text", "body": "on twenty branches"},
    )
    assert status == 200, sent
    prevs = set((await served(room, sent["event_id"]))["prev_events"])
    assert prevs == {e.event_id for e in chains[1::2]}
    before = await state_ids_before(room, sent["event_id"])
    assert name.event_id not in before
    state = await current_state(hs, token, room.room_id)
    assert state[("m.room.name", "")] == name.event_id
    assert state[("m.room.power_levels", "")] == x


@pytest.mark.parametrize("forked", ["12"], indirect=True)
async def test_a_join_on_an_older_extremity_merges_with_the_other_branch(
    forked: tuple[RunningServer, str, RemoteRoom, dict[str, Any]],
) -> None:
    """Dave's make_join template cites X; bob's name N (on X) arrives before
    the signed join comes back through send_join. The join forks the room:
    the current state is the resolution of both branches (N's name and
    dave's membership), and alice's next event merges them."""
    hs, token, room, levels = forked
    dave = room.user("dave")
    status, made = await make_join(room.remote, hs, room.room_id, dave, "12")
    assert status == 200, made
    x = room.heads[0]
    assert made["event"]["prev_events"] == [x]
    name, _ = branches(room, levels)
    status, body = await room.send([name])
    assert (status, body) == (200, {"pdus": {name.event_id: {}}})

    pdu = sign_join(room.remote, made["event"], "12")
    status, joined, join_id = await send_join(room.remote, hs, room.room_id, pdu, "12")
    assert status == 200, joined
    state = await current_state(hs, token, room.room_id)
    assert state[("m.room.name", "")] == name.event_id
    assert state[("m.room.member", dave)] == join_id

    status, sent = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room.room_id}/send/m.room.message/merge",
        token=token,
        json={"msgtype": "m.text", "body": "welcome dave"},
    )
    assert status == 200, sent
    assert set((await served(room, sent["event_id"]))["prev_events"]) == {name.event_id, join_id}
    before = await state_ids_before(room, sent["event_id"])
    assert {name.event_id, join_id} <= before
