"""A server that was down asks, as it starts, for what was sent meanwhile."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from federation.inbound.pdus import MISSING_EVENTS_LIMIT
from tests.federation.conftest import ScriptedRemote
from tests.federation.remote_room import V1, RemoteRoom, serve_dag

V3 = "/_matrix/client/v3"


async def test_events_sent_while_we_were_down_arrive_when_we_start(
    server_factory: Any, remote_factory: Any
) -> None:
    hs = await server_factory(federation_insecure=True)
    remote: ScriptedRemote = await remote_factory(start=False)
    holder: dict[str, RemoteRoom] = {}
    serve_dag(remote, holder)

    async def latest(request: web.Request, origin: str, body: Any) -> Any:
        assert request.query["dir"] == "b"
        newest = max(holder["room"].events.values(), key=lambda e: e.depth)
        return {"event_id": newest.event_id, "origin_server_ts": newest.origin_server_ts}

    remote.app.router.add_get(V1 + "/timestamp_to_event/{roomId}", remote.handler(latest))
    await remote.start()
    await remote.expect_keys_of(hs)
    alice = await hs.register("alice")
    status, created = await hs.request(
        "POST", f"{V3}/createRoom", token=alice["access_token"], json={"preset": "public_chat"}
    )
    assert status == 200, created
    room_id = created["room_id"]
    holder["room"] = room = await RemoteRoom.join(hs, remote, room_id)

    # Our server stops; the remote's user writes meanwhile, more than one
    # /get_missing_events brings (the state before those it brings is had
    # through /state_ids; the older ones would come by backfill, which this
    # remote does not serve); our server starts again.
    await hs.server.stop()
    sent = [room.message(f"while away {i}").event_id for i in range(MISSING_EVENTS_LIMIT + 5)]
    back = await server_factory(federation_insecure=True)

    deadline = time.monotonic() + 20
    while True:
        status, page = await back.request(
            "GET",
            f"{V3}/rooms/{room_id}/messages?dir=b&limit=50",
            token=alice["access_token"],
        )
        assert status == 200, page
        seen = [e["event_id"] for e in reversed(page["chunk"]) if e["type"] == "m.room.message"]
        if seen == sent[-(MISSING_EVENTS_LIMIT + 1) :]:
            break
        assert time.monotonic() < deadline, f"not caught up: {seen}"
        await asyncio.sleep(0.2)
    # The remote was asked for its latest event, then for that event.
    asked = [path for method, path, _, _ in remote.received if method == "GET"]
    assert any(path.startswith(V1 + "/timestamp_to_event/") for path in asked)
