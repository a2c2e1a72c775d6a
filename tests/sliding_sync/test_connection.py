"""Connections: long polling, `pos` across a restart, M_UNKNOWN_POS."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import RunningServer, make_config, start_server
from tests.sliding_sync.helpers import UNSTABLE, User, all_rooms, bodies, new_user


async def test_a_long_poll_wakes_on_a_new_message(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    first = await alice.sync_ok(all_rooms())
    poll = asyncio.create_task(alice.sync_ok(all_rooms(), pos=first["pos"], wait_ms=10_000))
    await asyncio.sleep(0.2)
    assert not poll.done()
    started = time.monotonic()
    await alice.send(room, "wake up")
    woken = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 2
    assert bodies(woken["rooms"][room]["timeline"]) == ["wake up"]
    assert woken["pos"] != first["pos"]


async def test_a_quiet_long_poll_times_out_with_the_same_lists(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    await alice.create_room()
    first = await alice.sync_ok(all_rooms())
    started = time.monotonic()
    again = await alice.sync_ok(all_rooms(), pos=first["pos"], wait_ms=300)
    assert time.monotonic() - started >= 0.3
    assert again["rooms"] == {}
    assert again["lists"] == first["lists"]
    assert again["pos"] == first["pos"]


async def test_an_unknown_pos_is_refused(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    first = await alice.sync_ok(all_rooms())
    for pos in ("12345678", "nonsense", first["pos"] + "0"):
        status, body = await alice.sliding(all_rooms(), pos=pos)
        assert (status, body["errcode"]) == (400, "M_UNKNOWN_POS"), pos
    # Another user's pos, and the same user's under another conn_id, are unknown too.
    status, body = await bob.sliding(all_rooms(), pos=first["pos"])
    assert (status, body["errcode"]) == (400, "M_UNKNOWN_POS")
    status, body = await alice.sliding({**all_rooms(), "conn_id": "other"}, pos=first["pos"])
    assert (status, body["errcode"]) == (400, "M_UNKNOWN_POS")


async def test_a_new_connection_replaces_the_old_one_of_its_conn_id(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    await alice.create_room()
    old = await alice.sync_ok(all_rooms())
    await alice.sync_ok(all_rooms())
    status, body = await alice.sliding(all_rooms(), pos=old["pos"])
    assert (status, body["errcode"]) == (400, "M_UNKNOWN_POS")


async def test_positions_before_the_one_used_are_forgotten(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    first = await alice.sync_ok(all_rooms())
    await alice.send(room, "one")
    second = await alice.sync_ok(all_rooms(), pos=first["pos"])
    # A retry of the same pos is fine, and gets the same news.
    retry = await alice.sync_ok(all_rooms(), pos=first["pos"])
    assert bodies(retry["rooms"][room]["timeline"]) == ["one"]
    await alice.sync_ok(all_rooms(), pos=second["pos"])
    status, body = await alice.sliding(all_rooms(), pos=first["pos"])
    assert (status, body["errcode"]) == (400, "M_UNKNOWN_POS")


async def test_pos_stays_valid_across_a_restart(database: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = make_config(database, tmp_path)
    hs = await start_server(config)
    try:
        alice = await new_user(hs, "alice")
        room = await alice.create_room(name="kept")
        first = await alice.sync_ok(all_rooms())
        assert first["rooms"][room]["initial"] is True
    finally:
        await hs.http.close()
        await hs.server.stop()
    hs = await start_server(config)
    try:
        alice = User(hs, {"user_id": alice.user_id, "access_token": alice.token})
        await alice.send(room, "after the restart")
        again = await alice.sync_ok(all_rooms(), pos=first["pos"])
        entry = again["rooms"][room]
        # Not sent afresh: only what is new since the connection's last response.
        assert "initial" not in entry
        assert bodies(entry["timeline"]) == ["after the restart"]
    finally:
        await hs.http.close()
        await hs.server.stop()


async def test_versions_advertise_simplified_sliding_sync(hs: RunningServer) -> None:
    status, body = await hs.request("GET", "/_matrix/client/versions")
    assert status == 200
    assert body["unstable_features"]["org.matrix.simplified_msc3575"] is True
    status, body = await hs.request("POST", UNSTABLE, json={})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_a_device_keeps_only_its_most_recent_connections(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    oldest = await alice.sync_ok({**all_rooms(), "conn_id": "c0"})
    for i in range(1, 10):
        await alice.sync_ok({**all_rooms(), "conn_id": f"c{i}"})
    # Ten connections: all still there.
    await alice.sync_ok({**all_rooms(), "conn_id": "c0"}, pos=oldest["pos"])
    await alice.sync_ok({**all_rooms(), "conn_id": "c10"})
    await alice.sync_ok({**all_rooms(), "conn_id": "c11"})
    # c0 was used most recently of the first ten, so c1 and c2 went.
    status, body = await alice.sliding({**all_rooms(), "conn_id": "c0"}, pos=oldest["pos"])
    assert status == 200, body
    count = await hs.pool.fetchval(
        "SELECT count(*) FROM sliding_sync_connections WHERE user_id = $1", alice.user_id
    )
    assert count == 10
    assert not await hs.pool.fetchval(
        "SELECT count(*) FROM sliding_sync_connections WHERE conn_id IN ('c1', 'c2')"
    )


async def test_a_bigger_timeline_limit_sends_older_events_again(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    for i in range(4):
        await alice.send(room, f"m{i}")
    first = await alice.sync_ok(all_rooms(limit=1))
    assert bodies(first["rooms"][room]["timeline"]) == ["m3"]
    second = await alice.sync_ok(all_rooms(limit=3), pos=first["pos"])
    entry = second["rooms"][room]
    assert bodies(entry["timeline"]) == ["m1", "m2", "m3"]
    assert entry["unstable_expanded_timeline"] is True
    assert entry["num_live"] == 0


async def test_pos_is_a_messages_token(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    await alice.send(room, "before")
    first = await alice.sync_ok(all_rooms())
    await alice.send(room, "after")
    page = await alice.call(
        "GET", f"/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=1&from={first['pos']}"
    )
    assert bodies(page["chunk"]) == ["before"]


async def test_a_long_poll_wakes_on_an_invite_and_on_another_rooms_message(
    hs: RunningServer,
) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    quiet = await alice.create_room()
    busy = await alice.create_room()
    first = await alice.sync_ok(all_rooms())
    # The first look of the poll reads every room; the later ones only what moved.
    poll = asyncio.create_task(alice.sync_ok(all_rooms(), pos=first["pos"], wait_ms=10_000))
    await asyncio.sleep(0.2)
    await alice.send(busy, "busy")
    woken = await asyncio.wait_for(poll, 5)
    assert list(woken["rooms"]) == [busy]
    invited = await bob.create_room(name="come")
    poll = asyncio.create_task(alice.sync_ok(all_rooms(), pos=woken["pos"], wait_ms=10_000))
    await asyncio.sleep(0.2)
    await bob.invite(invited, alice.user_id)
    woken = await asyncio.wait_for(poll, 5)
    assert woken["lists"]["all"]["count"] == 3
    assert woken["rooms"][invited]["invite_state"][-1]["content"]["membership"] == "invite"
    poll = asyncio.create_task(alice.sync_ok(all_rooms(), pos=woken["pos"], wait_ms=10_000))
    await asyncio.sleep(0.2)
    await alice.send(quiet, "now me")
    woken = await asyncio.wait_for(poll, 5)
    assert bodies(woken["rooms"][quiet]["timeline"]) == ["now me"]


async def test_connections_unused_for_a_week_are_pruned(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    old = await alice.sync_ok(all_rooms())
    eight_days_ms = 8 * 24 * 3600 * 1000
    await hs.pool.execute(
        "UPDATE sliding_sync_connections SET last_used_ts = last_used_ts - $1", eight_days_ms
    )
    # Any new connection prunes the server's stale ones.
    await bob.sync_ok(all_rooms())
    status, body = await alice.sliding(all_rooms(), pos=old["pos"])
    assert (status, body["errcode"]) == (400, "M_UNKNOWN_POS")
    assert not await hs.pool.fetchval(
        "SELECT count(*) FROM sliding_sync_positions p JOIN sliding_sync_connections c"
        " ON c.id = p.connection_id WHERE c.user_id = $1",
        alice.user_id,
    )
