"""Self-destructing messages (MSC2228): with enable_ephemeral_messages, a
message carrying org.matrix.self_destruct_after reads as redacted once that
time has passed, also after a restart; without it, nothing happens."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tests.conftest import make_config, start_server

V3 = "/_matrix/client/v3"
KEY = "org.matrix.self_destruct_after"


def now_ms() -> int:
    return int(time.time() * 1000)


async def room_of(hs: Any, name: str) -> tuple[str, str]:
    token = (await hs.register(name))["access_token"]
    status, room = await hs.request("POST", f"{V3}/createRoom", token=token, json={})
    assert status == 200
    return token, room["room_id"]


async def send(hs: Any, token: str, room_id: str, body: str, expiry: int | None) -> str:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if expiry is not None:
        content[KEY] = expiry
    status, sent = await hs.request(
        "PUT", f"{V3}/rooms/{room_id}/send/m.room.message/{body}", token=token, json=content
    )
    assert status == 200, sent
    return sent["event_id"]


async def contents(hs: Any, token: str, room_id: str) -> dict[str, dict]:
    """{event id: content} of the room's messages, as /messages shows them."""
    filter_ = json.dumps({"types": ["m.room.message"]})
    status, page = await hs.request(
        "GET", f"{V3}/rooms/{room_id}/messages?dir=b&filter={filter_}", token=token
    )
    assert status == 200, page
    return {e["event_id"]: e["content"] for e in page["chunk"]}


async def wait_censored(hs: Any, token: str, room_id: str, event_id: str) -> dict[str, dict]:
    for _ in range(200):
        seen = await contents(hs, token, room_id)
        if seen[event_id] == {}:
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"{event_id} was not censored: {seen[event_id]}")


async def search(hs: Any, token: str, term: str) -> list[str]:
    status, body = await hs.request(
        "POST",
        f"{V3}/search",
        token=token,
        json={"search_categories": {"room_events": {"search_term": term}}},
    )
    assert status == 200, body
    return [r["result"]["event_id"] for r in body["search_categories"]["room_events"]["results"]]


async def test_expired_message_is_censored(server_factory):
    hs = await server_factory(enable_ephemeral_messages=True)
    token, room_id = await room_of(hs, "eve")
    # Long enough to see it before it expires, even on a loaded machine.
    doomed = await send(hs, token, room_id, "vanishing", now_ms() + 4000)
    kept = await send(hs, token, room_id, "lasting", None)
    # A state event with the key is not a message: left alone.
    status, _ = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/state/m.room.topic",
        token=token,
        json={"topic": "t", KEY: now_ms()},
    )
    assert status == 200
    before = await contents(hs, token, room_id)
    assert before[doomed]["body"] == "vanishing"
    assert await search(hs, token, "vanishing") == [doomed]

    after = await wait_censored(hs, token, room_id, doomed)
    assert after[kept]["body"] == "lasting"
    assert await search(hs, token, "vanishing") == []
    status, event = await hs.request("GET", f"{V3}/rooms/{room_id}/event/{doomed}", token=token)
    assert (status, event["content"]) == (200, {})
    status, topic = await hs.request("GET", f"{V3}/rooms/{room_id}/state/m.room.topic", token=token)
    assert topic["topic"] == "t"
    assert await hs.pool.fetchval("SELECT count(*) FROM event_expiry") == 0


async def test_expiry_survives_a_restart(database, tmp_path):
    config = make_config(database, tmp_path, enable_ephemeral_messages=True)
    hs = await start_server(config)
    try:
        token, room_id = await room_of(hs, "rita")
        doomed = await send(hs, token, room_id, "later", now_ms() + 1500)
    finally:
        await hs.http.close()
        await hs.server.stop()
    hs = await start_server(config)
    try:
        await wait_censored(hs, token, room_id, doomed)
    finally:
        await hs.http.close()
        await hs.server.stop()


async def test_off_by_default(hs):
    token, room_id = await room_of(hs, "otto")
    event_id = await send(hs, token, room_id, "stays", now_ms() - 1000)
    await asyncio.sleep(0.3)
    seen = await contents(hs, token, room_id)
    assert seen[event_id]["body"] == "stays"
    assert await hs.pool.fetchval("SELECT count(*) FROM event_expiry") == 0
