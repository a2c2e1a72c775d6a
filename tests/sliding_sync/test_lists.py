"""Lists: rooms by activity, counts, ranges, a new message bumping a room."""

from __future__ import annotations

from tests.conftest import RunningServer
from tests.sliding_sync.helpers import all_rooms, bodies, new_user


def order(response: dict) -> list[str]:
    """Room ids of a response, by bump_stamp, newest first."""
    rooms = response["rooms"]
    return sorted(rooms, key=lambda r: -rooms[r]["bump_stamp"])


async def test_rooms_come_by_activity_and_a_message_bumps_its_room(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    rooms = [await alice.create_room(name=f"room {i}") for i in range(3)]
    await alice.send(rooms[0], "hello")
    first = await alice.sync_ok(all_rooms())
    assert first["lists"]["all"]["count"] == 3
    assert order(first) == [rooms[0], rooms[2], rooms[1]]
    room = first["rooms"][rooms[0]]
    assert room["initial"] is True
    assert room["name"] == "room 0"
    assert bodies(room["timeline"]) == ["hello"]
    assert room["joined_count"] == 1
    assert {e["type"] for e in room["required_state"]} == {"m.room.create", "m.room.name"}

    await alice.send(rooms[1], "bump")
    second = await alice.sync_ok(all_rooms(), pos=first["pos"])
    assert list(second["rooms"]) == [rooms[1]]
    bumped = second["rooms"][rooms[1]]
    assert "initial" not in bumped
    assert bodies(bumped["timeline"]) == ["bump"]
    assert bumped["num_live"] == 1
    assert bumped["bump_stamp"] > first["rooms"][rooms[0]]["bump_stamp"]
    assert "required_state" not in bumped or bumped["required_state"] == []


async def test_a_range_windows_the_list(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    rooms = [await alice.create_room() for _ in range(4)]
    response = await alice.sync_ok(all_rooms(end=1))
    assert response["lists"]["all"]["count"] == 4
    assert set(response["rooms"]) == {rooms[3], rooms[2]}
    wider = await alice.sync_ok(all_rooms(end=3), pos=response["pos"])
    # Only the rooms the connection has not seen yet.
    assert set(wider["rooms"]) == {rooms[1], rooms[0]}
