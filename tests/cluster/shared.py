"""Helpers of the cluster stream tests: two servers on one database, talked
to over HTTP like any client would."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

from tests.conftest import RunningServer


async def pair(server_factory: Any) -> tuple[RunningServer, RunningServer]:
    """Two processes of one deployment (the same server, its own listeners each)."""
    a = await server_factory(cluster={"enabled": True, "instance_name": "a"})
    b = await server_factory(cluster={"enabled": True, "instance_name": "b"})
    return a, b


async def ok(server: RunningServer, method: str, path: str, token: str, body: Any = None) -> Any:
    status, answer = await server.request(method, path, token=token, json=body)
    assert status == 200, (method, path, status, answer)
    return answer


async def create_room(server: RunningServer, token: str, invite: list[str] = ()) -> str:
    body = await ok(
        server,
        "POST",
        "/_matrix/client/v3/createRoom",
        token,
        {"preset": "private_chat", "invite": list(invite)},
    )
    return body["room_id"]


async def join(server: RunningServer, token: str, room_id: str) -> None:
    await ok(server, "POST", f"/_matrix/client/v3/join/{quote(room_id)}", token, {})


_txn = 0
WHOLE = '{"room":{"timeline":{"limit":200}}}'


async def send(server: RunningServer, token: str, room_id: str, body: str) -> str:
    global _txn
    _txn += 1
    answer = await ok(
        server,
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/t{_txn}",
        token,
        {"msgtype": "m.text", "body": body},
    )
    return answer["event_id"]


async def sync(
    server: RunningServer, token: str, since: str | None = None, timeout_ms: int = 0
) -> dict[str, Any]:
    # Timelines long enough that a response never leaves events out.
    # (Offline: a sync's own presence change would answer the next poll.)
    path = (
        f"/_matrix/client/v3/sync?timeout={timeout_ms}&filter={quote(WHOLE)}&set_presence=offline"
    )
    if since is not None:
        path += f"&since={since}"
    return await ok(server, "GET", path, token)


def timeline(response: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    room = response.get("rooms", {}).get("join", {}).get(room_id, {})
    return room.get("timeline", {}).get("events", [])


def bodies(response: dict[str, Any], room_id: str) -> list[str]:
    return [
        e["content"]["body"] for e in timeline(response, room_id) if e["type"] == "m.room.message"
    ]


async def sync_until(
    server: RunningServer, token: str, since: str, found: Any, within_s: float = 10
) -> dict[str, Any]:
    """Long-poll from `since` until a response satisfies `found` (each
    response's next_batch is the next since); returns that response."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        response = await sync(server, token, since, timeout_ms=2000)
        if found(response):
            return response
        since = response["next_batch"]
    raise AssertionError("not seen in time")


async def timed(coro: Any) -> tuple[float, Any]:
    started = time.monotonic()
    result = await coro
    return time.monotonic() - started, result


async def parked(task: asyncio.Task[Any]) -> None:
    """Give a long poll time to reach its wait (it answers nothing before)."""
    for _ in range(20):
        await asyncio.sleep(0.01)
        assert not task.done(), task.result()
