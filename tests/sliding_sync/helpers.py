"""Plain-HTTP helpers for the sliding sync tests: a user with a token, rooms,
messages and the two sync endpoints."""

from __future__ import annotations

import itertools
from typing import Any

from tests.conftest import RunningServer

UNSTABLE = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
STABLE = "/_matrix/client/v4/sync"
_txn = itertools.count()


class User:
    def __init__(self, hs: RunningServer, body: dict[str, Any]) -> None:
        self.hs = hs
        self.user_id: str = body["user_id"]
        self.token: str = body["access_token"]

    async def call(self, method: str, path: str, json: Any = None) -> Any:
        status, body = await self.hs.request(method, path, token=self.token, json=json)
        assert status == 200, (status, body)
        return body

    async def create_room(self, **body: Any) -> str:
        result = await self.call("POST", "/_matrix/client/v3/createRoom", body)
        return str(result["room_id"])

    async def send(self, room_id: str, text: str, event_type: str = "m.room.message") -> str:
        result = await self.call(
            "PUT",
            f"/_matrix/client/v3/rooms/{room_id}/send/{event_type}/t{next(_txn)}",
            {"msgtype": "m.text", "body": text},
        )
        return str(result["event_id"])

    async def state(self, room_id: str, event_type: str, content: Any, key: str = "") -> str:
        result = await self.call(
            "PUT", f"/_matrix/client/v3/rooms/{room_id}/state/{event_type}/{key}", content
        )
        return str(result["event_id"])

    async def invite(self, room_id: str, user_id: str) -> None:
        await self.call("POST", f"/_matrix/client/v3/rooms/{room_id}/invite", {"user_id": user_id})

    async def join(self, room_id: str) -> None:
        await self.call("POST", f"/_matrix/client/v3/join/{room_id}", {})

    async def leave(self, room_id: str) -> None:
        await self.call("POST", f"/_matrix/client/v3/rooms/{room_id}/leave", {})

    async def sliding(
        self, body: dict[str, Any], *, pos: str | None = None, wait_ms: int | None = None
    ) -> tuple[int, Any]:
        """The unstable endpoint, pos and timeout in the query."""
        query = []
        if pos is not None:
            query.append(f"pos={pos}")
        if wait_ms is not None:
            query.append(f"timeout={wait_ms}")
        path = UNSTABLE + ("?" + "&".join(query) if query else "")
        return await self.hs.request("POST", path, token=self.token, json=body)

    async def sync_ok(
        self, body: dict[str, Any], *, pos: str | None = None, wait_ms: int | None = None
    ) -> dict[str, Any]:
        status, result = await self.sliding(body, pos=pos, wait_ms=wait_ms)
        assert status == 200, result
        return dict(result)

    async def stable(self, body: dict[str, Any]) -> tuple[int, Any]:
        return await self.hs.request("POST", STABLE, token=self.token, json=body)


async def new_user(hs: RunningServer, name: str) -> User:
    return User(hs, await hs.register(name))


def all_rooms(limit: int = 1, end: int = 19, **extra: Any) -> dict[str, Any]:
    """A request body with one list, as Element X starts."""
    return {
        "lists": {
            "all": {
                "ranges": [[0, end]],
                "timeline_limit": limit,
                "required_state": [["m.room.create", ""], ["m.room.name", ""]],
                **extra,
            }
        }
    }


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"].get("body") for e in events if e["type"] == "m.room.message"]
