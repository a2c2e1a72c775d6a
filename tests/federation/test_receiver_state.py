"""Received events where the DAG forks: state resolution decides the room's
state, and an event that passes at its place in the DAG but not against the
current state is soft-failed (stored, never shown, not a forward extremity)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.federation.remote_room import V1, RemoteRoom
from tests.federation.test_receiver import bodies, room_with_remote, timeline


@pytest.fixture
async def promoted(
    fed_hs: RunningServer, remote_factory: Any
) -> tuple[RunningServer, str, RemoteRoom, dict[str, Any]]:
    """Alice's room where the remote's bob and carol joined and were made
    moderators (power 50, enough for state events) by alice's event X, which
    the remote knows. Returns X's power levels content too."""
    token, room = await room_with_remote(fed_hs, remote_factory)
    room_id = room.room_id
    await room.join_user("carol")
    levels = await state_content(fed_hs, token, room_id, "m.room.power_levels")
    levels["users"] = {**levels["users"], room.user("bob"): 50, room.user("carol"): 50}
    promotion = await put_state(fed_hs, token, room_id, "m.room.power_levels", levels)
    await room.learn(promotion)
    return fed_hs, token, room, levels


async def state_content(hs: RunningServer, token: str, room_id: str, type: str) -> Any:
    status, body = await hs.request(
        "GET", f"/_matrix/client/v3/rooms/{room_id}/state/{type}/", token=token
    )
    assert status == 200, body
    return body


async def put_state(
    hs: RunningServer, token: str, room_id: str, type: str, content: dict[str, Any]
) -> str:
    status, body = await hs.request(
        "PUT", f"/_matrix/client/v3/rooms/{room_id}/state/{type}/", token=token, json=content
    )
    assert status == 200, body
    return body["event_id"]


async def current_state(hs: RunningServer, token: str, room_id: str) -> dict[tuple[str, str], str]:
    status, body = await hs.request("GET", f"/_matrix/client/v3/rooms/{room_id}/state", token=token)
    assert status == 200, body
    return {(e["type"], e["state_key"]): e["event_id"] for e in body}


async def test_a_fork_is_settled_by_state_resolution(
    promoted: tuple[RunningServer, str, RemoteRoom, dict[str, Any]],
) -> None:
    """Two branches grow from X (alice made bob and carol moderators):

    - here, alice demotes bob: D (power levels, bob back to 0);
    - on the remote, concurrently, carol names the room (N), then bob sets a
      topic (T, on N), then carol's message M merges both branches (prev T, D).

    We receive N, T, M in one transaction. N passes everywhere (carol is still
    a moderator) and forks the room: the current state is the resolution of
    D's and N's branches. T passes the state before it (bob was a moderator
    there) but not the current state (D demoted him): soft-failed. M's state
    before is resolution v2 of (state after T, state after D): the power
    levels are conflicted between X and D, and D, which descends from X, is
    applied last, so bob has power 0; the name (only in T's branch) is N,
    which carol may set; the topic is T, which the iterative auth checks
    refuse under D, so the room keeps no topic. With N still a forward
    extremity (T, built on it, was soft-failed) the current state is the
    resolution of M's and N's states, which agree on all of it:
    power levels D, name N, no topic.
    """
    hs, token, room, levels = promoted
    x = room.heads[0]
    demoted = {**levels, "users": {**levels["users"], room.user("bob"): 0}}
    d = await put_state(hs, token, room.room_id, "m.room.power_levels", demoted)

    n = room.build("m.room.name", {"name": "carol's name"}, sender="carol", state_key="")
    t = room.build("m.room.topic", {"topic": "bob's topic"}, state_key="")
    assert n.prev_event_ids == (x,) and t.prev_event_ids == (n.event_id,)
    after_t = room.state
    d_event = await room.learn(d)
    m = room.message("merging", sender="carol", prev=[t.event_id, d_event.event_id], state=after_t)

    status, body = await room.send([n, t, m])
    assert status == 200, body
    assert body == {"pdus": {n.event_id: {}, t.event_id: {}, m.event_id: {}}}

    state = await current_state(hs, token, room.room_id)
    assert state[("m.room.power_levels", "")] == d
    assert state[("m.room.name", "")] == n.event_id
    assert ("m.room.topic", "") not in state
    assert (await state_content(hs, token, room.room_id, "m.room.name")) == {"name": "carol's name"}
    events = await timeline(hs, token, room.room_id)
    ids = [e["event_id"] for e in events]
    assert n.event_id in ids and m.event_id in ids and t.event_id not in ids
    assert (room.user("carol"), "merging") in bodies(events)


async def test_an_event_failing_the_current_state_is_soft_failed(
    promoted: tuple[RunningServer, str, RemoteRoom, dict[str, Any]],
) -> None:
    hs, token, room, levels = promoted
    x = room.heads[0]
    demoted = {**levels, "users": {**levels["users"], room.user("bob"): 0}}
    d = await put_state(hs, token, room.room_id, "m.room.power_levels", demoted)
    # Bob, not having heard of his demotion, sets a topic on X.
    topic = room.build("m.room.topic", {"topic": "too late"}, state_key="", prev=[x])
    status, body = await room.send([topic])
    assert (status, body) == (200, {"pdus": {topic.event_id: {}}})

    # Stored (other servers may fetch it) but not in any timeline or the state.
    status, served = await room.remote.request(hs, "GET", f"{V1}/event/{topic.event_id}")
    assert status == 200, served
    assert served["pdus"][0]["content"] == {"topic": "too late"}
    events = await timeline(hs, token, room.room_id)
    assert topic.event_id not in {e["event_id"] for e in events}
    assert ("m.room.topic", "") not in await current_state(hs, token, room.room_id)
    # Not a forward extremity: alice's next event builds on D alone.
    status, sent = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room.room_id}/send/m.room.message/after",
        token=token,
        json={"msgtype": "m.text", "body": "after"},
    )
    assert status == 200
    status, fetched = await room.remote.request(hs, "GET", f"{V1}/event/{sent['event_id']}")
    assert status == 200
    assert fetched["pdus"][0]["prev_events"] == [d]
