"""Sliding sync (MSC4186) on a big account, for `compare.py`: a user joined to
`--ss-rooms` rooms, each with `--ss-members` members and `--ss-messages`
messages, and the unstable endpoint every client uses today (Synapse serves
it natively):

- first request of a connection: one list, range 0-19, timeline_limit 1, a
  few required_state pairs (checked: 20 rooms, one timeline event each, the
  list's count is every room);
- incremental request with nothing new: it must return on its timeout
  (checked: no room in it, and not before the timeout);
- wake-up: a long poll parked, then a member sends into any of the rooms
  (one far down the list as often as one at the top); the time from the send
  starting to the poll returning with that event (checked);
- memory per open connection: `--ss-connections` connections made, each then
  parked in a long poll; the server's resident memory grown, per connection.

The data set is built over the client API, the same requests for both
servers, with `--ss-concurrency` requests in flight at once: that many rooms
are created and filled side by side (a nonce in each create event keeps the
room ids of one creator apart), each by one request at a time (its joins,
then its messages), since a server makes one room's events one by one.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import urllib.parse
from typing import Any

from _server import V3, Client, gather_limited

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
RANGE_END = 19
REQUIRED_STATE = [
    ["m.room.create", ""],
    ["m.room.name", ""],
    ["m.room.avatar", ""],
    ["m.room.encryption", ""],
    ["m.room.member", "$ME"],
]
TIMEOUT_MS = 300


def _path(pos: str | None = None, timeout_ms: int = 0) -> str:
    query = {"timeout": str(timeout_ms)}
    if pos is not None:
        query["pos"] = pos
    return f"{PATH}?{urllib.parse.urlencode(query)}"


def _body(conn_id: str) -> dict[str, Any]:
    return {
        "conn_id": conn_id,
        "lists": {
            "all": {
                "ranges": [[0, RANGE_END]],
                "timeline_limit": 1,
                "required_state": REQUIRED_STATE,
            }
        },
    }


async def setup(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    """The user, the other members, and the filled rooms (not measured)."""
    t0 = time.perf_counter()
    register = {"password": "pw", "auth": {"type": "m.login.dummy"}}
    users = await gather_limited(
        args.concurrency,
        [
            client.call("POST", f"{V3}/register", body={"username": f"ss{i}", **register})
            for i in range(args.ss_members)
        ],
    )
    owner, members = users[0], users[1:]

    # A room's events are made one after another on both servers (each
    # holds a lock per room), so requests of one room sent together only
    # queue there while holding a slot: each room is filled by one request
    # at a time, and `--ss-concurrency` rooms are filled side by side, so
    # that many requests are in flight, each in a room of its own.
    async def room(n: int) -> str:
        created = await client.call(
            "POST",
            f"{V3}/createRoom",
            owner["access_token"],
            {
                "preset": "public_chat",
                "name": f"ss room {n}",
                "creation_content": {"bench.nonce": n},
            },
        )
        room_id = created["room_id"]
        for m in members:
            await client.call("POST", f"{V3}/rooms/{room_id}/join", m["access_token"], {})
        senders = [owner, *members]
        for i in range(args.ss_messages):
            await client.call(
                "PUT",
                f"{V3}/rooms/{room_id}/send/m.room.message/ss{n}m{i}",
                senders[i % len(senders)]["access_token"],
                {"msgtype": "m.text", "body": f"message {i}"},
            )
        return str(room_id)

    rooms = await gather_limited(args.ss_concurrency, [room(n) for n in range(args.ss_rooms)])
    print(f"    sliding sync data: {len(rooms)} rooms in {time.perf_counter() - t0:.1f}s")
    return {
        "token": owner["access_token"],
        "sender": members[0]["access_token"] if members else owner["access_token"],
        "rooms": rooms,
        "connections": 0,
    }


def _conn_id(data: dict[str, Any], label: str) -> str:
    data["connections"] += 1
    return f"{label}{data['connections']}"


def check_first(response: dict[str, Any], rooms: int, name: str) -> None:
    got = response.get("rooms", {})
    count = response.get("lists", {}).get("all", {}).get("count")
    wanted = min(rooms, RANGE_END + 1)
    timelines = [len(r.get("timeline", [])) for r in got.values()]
    if len(got) != wanted or count != rooms or set(timelines) != {1}:
        raise SystemExit(
            f"{name} sliding sync: {len(got)} rooms (want {wanted}), count {count} "
            f"(want {rooms}), timelines {sorted(set(timelines))}"
        )
    for room_id, room in got.items():
        types = {e["type"] for e in room.get("required_state", [])}
        if "m.room.create" not in types:
            raise SystemExit(f"{name} sliding sync: {room_id} without its create event")


async def first_requests(
    client: Client, data: dict[str, Any], runs: int, name: str
) -> tuple[list[float], int]:
    """`runs` first requests, each of a new connection."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        response = await client.call("POST", _path(), data["token"], _body(_conn_id(data, "first")))
        times.append(time.perf_counter() - t0)
        check_first(response, len(data["rooms"]), name)
    return times, runs


async def _connect(
    client: Client, data: dict[str, Any], label: str, token: str | None = None
) -> tuple[str, str]:
    """A new connection after its first request: (conn_id, pos)."""
    conn_id = _conn_id(data, label)
    response = await client.call("POST", _path(), token or data["token"], _body(conn_id))
    return conn_id, response["pos"]


async def _new_device(client: Client) -> str:
    """The access token of a new device of the user (servers keep a bounded
    number of connections per device, as phones have one or two each)."""
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "ss0"},
        "password": "pw",
    }
    return str((await client.call("POST", f"{V3}/login", body=body))["access_token"])


async def idle_timeouts(
    client: Client, data: dict[str, Any], runs: int, name: str
) -> tuple[list[float], int]:
    """Incremental requests with nothing new, each returning on its timeout."""
    conn_id, pos = await _connect(client, data, "idle")
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        response = await client.call("POST", _path(pos, TIMEOUT_MS), data["token"], _body(conn_id))
        elapsed = time.perf_counter() - t0
        times.append(elapsed)
        if response.get("rooms") or elapsed < TIMEOUT_MS / 1000 * 0.9:
            raise SystemExit(
                f"{name} sliding sync: idle poll returned after {elapsed * 1000:.0f} ms "
                f"with {len(response.get('rooms', {}))} rooms"
            )
        pos = response["pos"]
    return times, runs


async def wakeups(
    client: Client, data: dict[str, Any], iterations: int, park_ms: int, name: str
) -> tuple[list[float], int]:
    """Send start -> the parked long poll returns with the event; the rooms
    sent into are spread over the whole list."""
    conn_id, pos = await _connect(client, data, "wake")
    rooms = data["rooms"]
    times = []
    for i in range(iterations):
        room_id = rooms[(i * 7919) % len(rooms)]
        poll = asyncio.ensure_future(
            client.call("POST", _path(pos, 30_000), data["token"], _body(conn_id))
        )
        await asyncio.sleep(park_ms / 1000)
        t0 = time.perf_counter()
        sent = await client.call(
            "PUT",
            f"{V3}/rooms/{room_id}/send/m.room.message/wake{conn_id}.{i}",
            data["sender"],
            {"msgtype": "m.text", "body": f"wake {i}"},
        )
        while True:
            response = await poll
            pos = response["pos"]
            timeline = response.get("rooms", {}).get(room_id, {}).get("timeline", [])
            if any(e.get("event_id") == sent["event_id"] for e in timeline):
                break
            # Woken by something else first: wait on from there.
            poll = asyncio.ensure_future(
                client.call("POST", _path(pos, 30_000), data["token"], _body(conn_id))
            )
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - t0 > 25:
            raise SystemExit(f"{name} sliding sync: no wake-up for {sent['event_id']}")
    return times, iterations


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def memory_per_connection(
    client: Client, data: dict[str, Any], pid: int, connections: int
) -> float:
    """KB of resident memory the server grew by per open connection: each
    on a device of its own, made, then parked in a long poll, measured while
    all are parked."""
    tokens = [await _new_device(client) for _ in range(connections)]
    before = _rss_kb(pid)
    opened = [await _connect(client, data, "mem", token) for token in tokens]
    polls = [
        asyncio.ensure_future(
            client.call("POST", _path(pos, 2 * TIMEOUT_MS * 4), token, _body(conn_id))
        )
        for (conn_id, pos), token in zip(opened, tokens, strict=True)
    ]
    await asyncio.sleep(TIMEOUT_MS / 1000)
    during = _rss_kb(pid)
    await asyncio.gather(*polls)
    return max(0, during - before) / connections
