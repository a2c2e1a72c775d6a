"""Bad requests get a Matrix error and leave the connection as it was."""

from __future__ import annotations

from typing import Any

from tests.conftest import RunningServer
from tests.sliding_sync.helpers import all_rooms, bodies, new_user

BAD_BODIES: list[tuple[Any, str]] = [
    ({"lists": []}, "M_BAD_JSON"),
    ({"lists": {"a": {"ranges": [[5, 1]], "timeline_limit": 1}}}, "M_INVALID_PARAM"),
    ({"lists": {"a": {"ranges": [[0, 2**40]], "timeline_limit": 1}}}, "M_INVALID_PARAM"),
    ({"lists": {"a": {"ranges": [[-1, 3]], "timeline_limit": 1}}}, "M_INVALID_PARAM"),
    ({"lists": {"a": {"ranges": [[0, "9"]], "timeline_limit": 1}}}, "M_BAD_JSON"),
    ({"lists": {"a": {"ranges": [[0]], "timeline_limit": 1}}}, "M_BAD_JSON"),
    ({"lists": {"a": {"ranges": [[0, 1]] * 101, "timeline_limit": 1}}}, "M_INVALID_PARAM"),
    ({"lists": {"a": {"ranges": [[0, 1]], "timeline_limit": "1"}}}, "M_BAD_JSON"),
    ({"lists": {"a": {"ranges": [[0, 1]], "timeline_limit": -1}}}, "M_INVALID_PARAM"),
    ({"lists": {"a": {"timeline_limit": 1, "required_state": [["m.room.name"]]}}}, "M_BAD_JSON"),
    ({"lists": {"a": {"timeline_limit": 1, "required_state": "*"}}}, "M_BAD_JSON"),
    ({"lists": {"a": {"timeline_limit": 1, "filters": {"is_fun": True}}}}, "M_INVALID_PARAM"),
    ({"lists": {"a": {"timeline_limit": 1, "filters": {"is_dm": "yes"}}}}, "M_BAD_JSON"),
    ({"lists": {"a": {"timeline_limit": 1, "filters": {"tags": "x"}}}}, "M_BAD_JSON"),
    ({"lists": {"a": {"timeline_limit": 1, "filters": {"spaces": ["x"]}}}}, "M_INVALID_PARAM"),
    ({"lists": {str(i): {"timeline_limit": 1} for i in range(101)}}, "M_INVALID_PARAM"),
    ({"room_subscriptions": {"not-a-room": {"timeline_limit": 1}}}, "M_INVALID_PARAM"),
    ({"room_subscriptions": {"!a:localhost": []}}, "M_BAD_JSON"),
    ({"conn_id": 7}, "M_BAD_JSON"),
]


async def test_bad_bodies_are_refused(hs: RunningServer) -> None:
    # One server for all of them: starting one per case costs seconds each.
    alice = await new_user(hs, "alice")
    for body, errcode in BAD_BODIES:
        status, result = await alice.sliding(body)
        assert (status, result["errcode"]) == (400, errcode), (body, result)
    status, result = await alice.stable({"pos": 5})
    assert (status, result["errcode"]) == (400, "M_BAD_JSON")
    status, result = await alice.stable({"timeout": "5"})
    assert (status, result["errcode"]) == (400, "M_BAD_JSON")
    status, result = await alice.stable({"lists": {"a": {"range": [3, 1], "timeline_limit": 1}}})
    assert (status, result["errcode"]) == (400, "M_INVALID_PARAM")
    status, result = await alice.stable(
        {"lists": {"a": {"timeline_limit": 1, "required_state": {"include": [{"kind": "x"}]}}}}
    )
    assert (status, result["errcode"]) == (400, "M_INVALID_PARAM")
    status, result = await alice.stable({"lists": {"a": {"filters": {"is_invite": True}}}})
    assert (status, result["errcode"]) == (400, "M_INVALID_PARAM")
    # No connection was stored by any of them.
    assert await hs.pool.fetchval("SELECT count(*) FROM sliding_sync_connections") == 0


async def test_a_bad_request_changes_nothing(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    first = await alice.sync_ok(all_rooms())
    await alice.send(room, "news")
    bad = all_rooms()
    bad["lists"]["all"]["filters"] = {"unknown": 1}
    status, result = await alice.sliding(bad, pos=first["pos"])
    assert (status, result["errcode"]) == (400, "M_INVALID_PARAM")
    status, result = await alice.sliding(all_rooms(), pos=first["pos"], wait_ms="soon")  # type: ignore[arg-type]
    assert (status, result["errcode"]) == (400, "M_INVALID_PARAM")
    # The same pos still works and still has the news.
    again = await alice.sync_ok(all_rooms(), pos=first["pos"])
    assert bodies(again["rooms"][room]["timeline"]) == ["news"]
    status, result = await hs.request(
        "POST",
        "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
        token=alice.token,
        data=b"{not json",
    )
    assert (status, result["errcode"]) == (400, "M_NOT_JSON")
