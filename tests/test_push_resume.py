"""Pushes are sent from the stored notification rows (homeserver/push/stream.py),
so a server stopped while a gateway was failing pushes, once started again,
what it had not pushed yet, and not what it had."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from tests.test_pushers import V3, pusher_body, running_gateway


async def _until(check: Any) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not within 10 s")


async def _send(hs: Any, token: str, room_id: str, body: str) -> str:
    status, answer = await hs.request(
        "PUT",
        f"{V3}/rooms/{quote(room_id)}/send/m.room.message/{body.replace(' ', '-')}",
        token=token,
        json={"msgtype": "m.text", "body": body},
    )
    assert status == 200, answer
    return answer["event_id"]


async def test_a_restarted_server_pushes_what_it_had_not_pushed(server_factory: Any):
    first_run = await server_factory()
    alice = (await first_run.register("alice"))["access_token"]
    bob = (await first_run.register("bob"))["access_token"]
    async with running_gateway() as gateway:
        status, body = await first_run.request(
            "POST", f"{V3}/pushers/set", token=bob, json=pusher_body("bob-key", gateway.url)
        )
        assert status == 200, body
        status, body = await first_run.request(
            "POST", f"{V3}/createRoom", token=alice, json={"preset": "public_chat"}
        )
        assert status == 200, body
        room_id = body["room_id"]
        status, body = await first_run.request(
            "POST", f"{V3}/join/{quote(room_id)}", token=bob, json={}
        )
        assert status == 200, body
        pushed = await _send(first_run, alice, room_id, "pushed before")
        await gateway.wait_for("bob-key", pushed)

        # The gateway fails: the push is being retried when the server stops.
        gateway.failures = 10**6
        unpushed = await _send(first_run, alice, room_id, "not pushed yet")
        await _until(lambda: len(gateway.received) > 1)
        await first_run.server.stop()
        gateway.failures = 0
        tried = len(gateway.received)

        await server_factory()

        def again() -> list[str]:
            return [n["event_id"] for n in gateway.pushes("bob-key")[tried:]]

        await _until(again)
        assert again() == [unpushed]
