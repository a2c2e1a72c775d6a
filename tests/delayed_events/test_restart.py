"""Delayed events survive a restart of the server: what came due while it was
down is sent at start-up, once; a send cut off between putting the event in
the room and marking it sent is not repeated."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.conftest import make_config, start_server
from tests.delayed_events.helpers import User, new_user, wait_for


async def test_scheduled_before_a_restart_arrives_once_after(database: str, tmp_path: Path) -> None:
    config = make_config(database, tmp_path)
    hs = await start_server(config)
    try:
        alice = await new_user(hs, "alice")
        room = await alice.create_room()
        status, body = await alice.send_later(room, "while you were out", 300)
        assert status == 200, body
        due = time.monotonic() + 0.3
    finally:
        await hs.http.close()
        await hs.server.stop()
    # Down past the send time (the stop itself usually takes that long).
    await asyncio.sleep(max(0.0, due - time.monotonic()))
    hs = await start_server(config)
    started = time.monotonic()
    try:
        alice = User(hs, {"user_id": alice.user_id, "access_token": alice.token})
        assert await wait_for(lambda: _bodies(alice, room), within=3.0)
        # Sent at once at start-up: well within a second.
        assert time.monotonic() - started < 1.0
        assert await alice.bodies(room) == ["while you were out"]
        [entry] = (await alice.lookup())["finalised"]
        assert entry["outcome"] == "send" and entry["delayed_event"]["delay_id"] == body["delay_id"]
    finally:
        await hs.http.close()
        await hs.server.stop()


async def test_interrupted_sends_are_finished_once_at_start_up(
    database: str, tmp_path: Path
) -> None:
    """Two sends a process claimed and did not finish: one stopped before the
    event went into the room, one after (before the row was marked sent).
    After the restart each message is in the room exactly once."""
    config = make_config(database, tmp_path)
    hs = await start_server(config)
    try:
        alice = await new_user(hs, "alice")
        room = await alice.create_room()
        _, sent = await alice.send_later(room, "persisted", 60_000)
        _, claimed = await alice.send_later(room, "claimed", 60_000)
        assert await alice.act(sent["delay_id"], "send") == (200, {})
        assert await alice.bodies(room) == ["persisted"]
        # What a crash at either point leaves behind: the rows still claimed.
        await hs.pool.execute(
            """UPDATE delayed_events SET status = 'sending', claimed_at = 1,
                   event_id = NULL, finalised_ts = NULL, reason = NULL
               WHERE delay_id = ANY($1::text[])""",
            [sent["delay_id"], claimed["delay_id"]],
        )
    finally:
        await hs.http.close()
        await hs.server.stop()
    hs = await start_server(config)
    try:
        alice = User(hs, {"user_id": alice.user_id, "access_token": alice.token})

        async def both_finalised() -> bool:
            return len((await alice.lookup())["finalised"]) == 2

        assert await wait_for(both_finalised, within=3.0)
        assert sorted(await alice.bodies(room)) == ["claimed", "persisted"]
        finalised = (await alice.lookup())["finalised"]
        assert {f["outcome"] for f in finalised} == {"send"}
    finally:
        await hs.http.close()
        await hs.server.stop()


async def _bodies(user: User, room: str) -> list[str]:
    return await user.bodies(room)
