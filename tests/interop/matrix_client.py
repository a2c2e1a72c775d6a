"""A small client-API client for interop tests, for Synapse or our server alike.

matrix-nio would do, but interop tests need the raw JSON a server sent (to
compare servers byte for byte) and errors as (status, body), not exceptions.
"""

from __future__ import annotations

import itertools
import json as jsonlib
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
import attrs

_txn_ids = itertools.count()
T = TypeVar("T")


class MatrixError(Exception):
    """A client-API call answered with a status other than 200."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> {status}: {body}")
        self.status = status
        self.body = body


def quote(value: str) -> str:
    """A path segment: room ids, aliases and event ids carry ! # $ : that must be escaped."""
    return urllib.parse.quote(value, safe="")


async def call(
    http: aiohttp.ClientSession,
    base_url: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    json: Any = None,
    params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request; the status and the decoded JSON body (None for an empty one)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(
        method, base_url + path, json=json, params=params, headers=headers
    ) as resp:
        text = await resp.text()
        return resp.status, (jsonlib.loads(text) if text else None)


async def register(
    http: aiohttp.ClientSession, base_url: str, localpart: str, password: str
) -> MatrixClient:
    """Register through the user-interactive dummy flow: ask, then answer the session."""
    path = "/_matrix/client/v3/register"
    body: dict[str, Any] = {"username": localpart, "password": password}
    status, reply = await call(http, base_url, "POST", path, json=body)
    if status == 401:
        body["auth"] = {"type": "m.login.dummy", "session": reply["session"]}
        status, reply = await call(http, base_url, "POST", path, json=body)
    if status != 200:
        raise MatrixError("POST", path, status, reply)
    return MatrixClient(http, base_url, reply["user_id"], reply["access_token"], reply["device_id"])


async def login(
    http: aiohttp.ClientSession, base_url: str, localpart: str, password: str
) -> MatrixClient:
    """Log in with a password: a new device for the same user."""
    path = "/_matrix/client/v3/login"
    status, reply = await call(
        http,
        base_url,
        "POST",
        path,
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
        },
    )
    if status != 200:
        raise MatrixError("POST", path, status, reply)
    return MatrixClient(http, base_url, reply["user_id"], reply["access_token"], reply["device_id"])


@attrs.define
class MatrixClient:
    """A logged-in device: requests carry its token; `since` follows its syncs."""

    http: aiohttp.ClientSession
    base_url: str
    user_id: str
    access_token: str
    device_id: str
    since: str | None = None

    async def request(
        self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        return await call(
            self.http,
            self.base_url,
            method,
            path,
            token=self.access_token,
            json=json,
            params=params,
        )

    async def ok(
        self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        """The body of a request that must succeed; MatrixError otherwise."""
        status, body = await self.request(method, path, json, params)
        if status != 200:
            raise MatrixError(method, path, status, body)
        return body

    async def create_room(self, **body: Any) -> str:
        reply = await self.ok("POST", "/_matrix/client/v3/createRoom", body)
        return reply["room_id"]

    async def join(self, room: str, via: list[str] | None = None) -> str:
        """Join by room id or alias, over federation through `via` servers if given."""
        path = f"/_matrix/client/v3/join/{quote(room)}"
        if via:
            path += "?" + urllib.parse.urlencode([("server_name", server) for server in via])
        reply = await self.ok("POST", path, {})
        return reply["room_id"]

    async def invite(self, room_id: str, user_id: str) -> None:
        await self.ok(
            "POST", f"/_matrix/client/v3/rooms/{quote(room_id)}/invite", {"user_id": user_id}
        )

    async def leave(self, room_id: str) -> None:
        await self.ok("POST", f"/_matrix/client/v3/rooms/{quote(room_id)}/leave", {})

    async def send(
        self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> str:
        txn = f"t{time.time_ns()}-{next(_txn_ids)}"
        path = f"/_matrix/client/v3/rooms/{quote(room_id)}/send/{quote(event_type)}/{txn}"
        reply = await self.ok("PUT", path, content)
        return reply["event_id"]

    async def send_text(self, room_id: str, text: str) -> str:
        return await self.send(room_id, {"msgtype": "m.text", "body": text})

    async def put_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> str:
        path = (
            f"/_matrix/client/v3/rooms/{quote(room_id)}/state/{quote(event_type)}/"
            f"{quote(state_key)}"
        )
        reply = await self.ok("PUT", path, content)
        return reply["event_id"]

    async def sync(self, timeout_ms: int = 0) -> dict[str, Any]:
        """One /sync from where the last one ended; advances `since`."""
        params = {"timeout": str(timeout_ms)}
        if self.since is not None:
            params["since"] = self.since
        reply = await self.ok("GET", "/_matrix/client/v3/sync", params=params)
        self.since = reply["next_batch"]
        return reply

    async def sync_until(
        self, check: Callable[[dict[str, Any]], T | None], within: float = 15.0, what: str = ""
    ) -> T:
        """Sync until `check(sync response)` returns something other than None; return it.

        Long-polls, so it returns as soon as the server has news; fails with
        `what` after `within` seconds.
        """
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.user_id} did not see {what or 'the expected sync'} "
                    f"within {within:.0f} s"
                )
            found = check(await self.sync(timeout_ms=int(min(left, 5.0) * 1000)))
            if found is not None:
                return found

    async def sync_until_event(
        self,
        room_id: str,
        match: Callable[[dict[str, Any]], bool],
        within: float = 15.0,
        what: str = "",
    ) -> dict[str, Any]:
        """The first timeline event of joined room `room_id` for which `match` is true."""

        def check(response: dict[str, Any]) -> dict[str, Any] | None:
            room = response.get("rooms", {}).get("join", {}).get(room_id, {})
            for event in room.get("timeline", {}).get("events", []):
                if match(event):
                    return event
            return None

        return await self.sync_until(check, within, what or f"a matching event in {room_id}")

    async def sync_until_invite(self, room_id: str, within: float = 15.0) -> dict[str, Any]:
        """The invite state of `room_id` once it shows up in sync."""

        def check(response: dict[str, Any]) -> dict[str, Any] | None:
            return response.get("rooms", {}).get("invite", {}).get(room_id)

        return await self.sync_until(check, within, f"an invite to {room_id}")
