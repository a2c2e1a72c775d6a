"""Plain-HTTP helpers for the delayed event tests."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any
from urllib.parse import quote

from tests.conftest import RunningServer

V3 = "/_matrix/client/v3"
MSC = "/_matrix/client/unstable/org.matrix.msc4140"
DELAY = "org.matrix.msc4140.delay"
_txn = itertools.count()


class User:
    def __init__(self, hs: RunningServer, session: dict[str, Any]) -> None:
        self.hs = hs
        self.user_id: str = session["user_id"]
        self.token: str = session["access_token"]

    async def call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        return await self.hs.request(method, path, token=self.token, json=json)

    async def create_room(self, **body: Any) -> str:
        status, resp = await self.call("POST", f"{V3}/createRoom", body)
        assert status == 200, resp
        return str(resp["room_id"])

    async def join(self, room: str) -> None:
        status, resp = await self.call("POST", f"{V3}/join/{quote(room)}", {})
        assert status == 200, resp

    async def send_later(self, room: str, body: str, delay: Any) -> tuple[int, Any]:
        return await self.call(
            "PUT",
            f"{V3}/rooms/{quote(room)}/send/m.room.message/t{next(_txn)}?{DELAY}={delay}",
            {"msgtype": "m.text", "body": body},
        )

    async def state_later(
        self, room: str, type: str, key: str, content: dict[str, Any], delay: int
    ) -> tuple[int, Any]:
        return await self.call(
            "PUT", f"{V3}/rooms/{quote(room)}/state/{type}/{quote(key)}?{DELAY}={delay}", content
        )

    async def set_state(self, room: str, type: str, key: str, content: dict[str, Any]) -> str:
        status, resp = await self.call(
            "PUT", f"{V3}/rooms/{quote(room)}/state/{type}/{quote(key)}", content
        )
        assert status == 200, resp
        return str(resp["event_id"])

    async def state(self, room: str, type: str, key: str) -> tuple[int, Any]:
        return await self.call("GET", f"{V3}/rooms/{quote(room)}/state/{type}/{quote(key)}")

    async def messages(self, room: str) -> list[dict[str, Any]]:
        status, resp = await self.call("GET", f"{V3}/rooms/{quote(room)}/messages?dir=b&limit=50")
        assert status == 200, resp
        return list(reversed(resp["chunk"]))

    async def bodies(self, room: str) -> list[str]:
        return [
            e["content"]["body"] for e in await self.messages(room) if e["type"] == "m.room.message"
        ]

    async def act(self, delay_id: str, action: str) -> tuple[int, Any]:
        return await self.call("POST", f"{MSC}/delayed_events/{delay_id}/{action}", {})

    async def lookup(self, query: str = "") -> dict[str, Any]:
        status, resp = await self.call("GET", f"{MSC}/delayed_events{query}")
        assert status == 200, resp
        return dict(resp)


async def new_user(hs: RunningServer, name: str) -> User:
    return User(hs, await hs.register(name))


async def wait_for(check: Any, within: float = 5.0) -> Any:
    """Poll an async `check` until it returns something true."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)
