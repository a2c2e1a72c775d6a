"""Phase "federation" of `scale.py`: PDUs per second a server accepts from a
remote server, into one room and spread over `--federation-rooms` rooms.

The remote is scripted in the bench process: its own ed25519 key published
at /_matrix/key/v2/server over HTTPS (a self-signed certificate, on
127.0.0.1: the server under test is configured to accept that, as a test
federation would be), requests signed with X-Matrix. Its user joins rooms a
local user created, through make_join / send_join (v2), and it builds each
PDU with our event engine (`homeserver.events.builder`): hashed, signed, its
auth events from the state the join returned, its prev event the remote's
previous event in that room. Nothing is relaxed on the receiving side: the
server fetches the remote's key and checks the request signature, every
PDU's signature, content hash and authorization.

Timed: `--federation-pdus` PDUs sent as a remote server sends them (one
transaction of at most 50 PDUs in flight at a time), from the first
transaction until the last PDU of every room is visible to the local user
(servers may accept a transaction before processing its PDUs). Then every
PDU is checked: the transaction answered it without error, and /messages
of each room holds it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import ssl
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
from _server import V3, Client, gather_limited, register
from aiohttp import web
from scale_common import (
    SERVER_NAME,
    Budget,
    CheckFailed,
    CpuMeter,
    PhaseResult,
    Target,
    database_bytes,
    profiled,
)
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from yarl import URL

from federation.auth import sign_request
from homeserver.events.builder import build_event
from homeserver.events.event import Event, parse_event
from homeserver.events.hashing import compute_event_id
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.signing import sign_event
from homeserver.keyfiles import ensure_self_signed_certificate

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"
TXN_PDUS = 50
_txn_ids = itertools.count()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


class RemoteRoom:
    """A room as the remote knows it: its version, state and latest event."""

    def __init__(self, room_id: str, version: RoomVersion, state: dict[Any, Event], head: Event):
        self.room_id = room_id
        self.version = version
        self.state = state
        self.head = head


class Remote:
    """The scripted remote server."""

    def __init__(self, directory: Path) -> None:
        self.signing_key = generate_signing_key("scale")
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.server_name = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self.user = f"@remote:{self.server_name}"
        self._directory = directory
        self.events: dict[str, Event] = {}
        self.state_ids: dict[str, list[str]] = {}
        self.auth_ids: dict[str, list[str]] = {}
        self._runner: web.AppRunner | None = None
        self.http: aiohttp.ClientSession | None = None

    async def _keys(self, _: web.Request) -> web.Response:
        key_id = f"{self.signing_key.alg}:{self.signing_key.version}"
        verify = encode_verify_key_base64(get_verify_key(self.signing_key))
        answer = {
            "server_name": self.server_name,
            "valid_until_ts": _now_ms() + 24 * 3600 * 1000,
            "verify_keys": {key_id: {"key": verify}},
            "old_verify_keys": {},
        }
        return web.json_response(sign_json(answer, self.server_name, self.signing_key))

    async def _event(self, request: web.Request) -> web.Response:
        event = self.events.get(request.match_info["event_id"])
        if event is None:
            return web.json_response({"errcode": "M_NOT_FOUND", "error": "unknown"}, status=404)
        pdu = {"origin": self.server_name, "origin_server_ts": _now_ms(), "pdus": [event.pdu]}
        return web.json_response(json.loads(json.dumps(pdu, default=dict)))

    async def _missing(self, request: web.Request) -> web.Response:
        """/get_missing_events: the remote's events between `earliest` and
        `latest` (Synapse drops PDUs from its staging area when a remote
        sends many into one room, then asks for them back here)."""
        body = await request.json()
        earliest = set(body.get("earliest_events", []))
        limit = int(body.get("limit", 10))
        found: list[Event] = []
        seen: set[str] = set()
        todo = [
            p
            for i in body.get("latest_events", [])
            if i in self.events
            for p in self.events[i].prev_event_ids
        ]
        while todo and len(found) < limit:
            event_id = todo.pop()
            if event_id in seen or event_id in earliest or event_id not in self.events:
                continue
            seen.add(event_id)
            found.append(self.events[event_id])
            todo.extend(self.events[event_id].prev_event_ids)
        found.sort(key=lambda e: e.depth)
        pdus = [json.loads(json.dumps(e.pdu, default=dict)) for e in found]
        return web.json_response({"events": pdus})

    async def _state_ids(self, request: web.Request) -> web.Response:
        """/state_ids: what Synapse asks for when it cannot close a gap."""
        room_id = request.match_info["room_id"]
        if room_id not in self.state_ids:
            return web.json_response({"errcode": "M_NOT_FOUND", "error": "unknown"}, status=404)
        return web.json_response(
            {"pdu_ids": self.state_ids[room_id], "auth_chain_ids": self.auth_ids[room_id]}
        )

    async def _transaction(self, _: web.Request) -> web.Response:
        # What the servers send back (their own events, receipts): accepted.
        return web.json_response({"pdus": {}})

    async def start(self) -> None:
        cert, key = self._directory / "remote.crt", self._directory / "remote.key"
        ensure_self_signed_certificate(cert, key, "127.0.0.1")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        app = web.Application()
        app.router.add_get("/_matrix/key/v2/server", self._keys)
        app.router.add_get(V1 + "/event/{event_id}", self._event)
        app.router.add_put(V1 + "/send/{txn}", self._transaction)
        app.router.add_post(V1 + "/get_missing_events/{room_id}", self._missing)
        app.router.add_get(V1 + "/state_ids/{room_id}", self._state_ids)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock, ssl_context=tls).start()
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def request(self, target: Target, method: str, path: str, body: Any = None) -> Any:
        """A request to the target's federation listener, signed with X-Matrix."""
        assert self.http is not None
        auth = sign_request(
            method=method,
            uri=path,
            origin=self.server_name,
            destination=SERVER_NAME,
            content=body,
            signing_key=self.signing_key,
        )
        headers = {"Authorization": auth}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        url = URL(target.fed_url + path, encoded=True)
        async with self.http.request(method, url, data=data, headers=headers, ssl=False) as r:
            answer = await r.json(content_type=None)
            if r.status != 200:
                raise CheckFailed(f"federation phase, {target.name}: {method} {path}: {answer}")
            return answer

    async def join(self, target: Target, room_id: str) -> RemoteRoom:
        made = await self.request(
            target,
            "GET",
            f"{V1}/make_join/{_quote(room_id)}/{_quote(self.user)}?ver=10&ver=11&ver=12",
        )
        version = KNOWN_ROOM_VERSIONS[made.get("room_version", "1")]
        template = dict(made["event"])
        template["origin_server_ts"] = _now_ms()
        pdu = sign_event(template, self.server_name, self.signing_key, version)
        event_id = compute_event_id(pdu, version)
        joined = await self.request(
            target, "PUT", f"{V2}/send_join/{_quote(room_id)}/{_quote(event_id)}", pdu
        )
        join = parse_event(joined.get("event") or pdu, version)
        state = {}
        for raw in joined["state"]:
            event = parse_event(raw, version)
            state[event.state_tuple] = event
            self.events[event.event_id] = event
        for raw in joined["auth_chain"]:
            event = parse_event(raw, version)
            self.events.setdefault(event.event_id, event)
        state[join.state_tuple] = join
        self.events[join.event_id] = join
        # The remote only sends messages: the state is the same before each.
        self.state_ids[room_id] = [e.event_id for e in state.values()]
        self.auth_ids[room_id] = sorted(
            {e.event_id for e in self.events.values() if e.room_id == room_id}
            - {e.event_id for e in self.events.values() if e.type == "m.room.message"}
        )
        return RemoteRoom(room_id, version, state, join)

    def message(self, room: RemoteRoom, body: str) -> Event:
        """The remote's next message in `room`, on top of its previous event."""
        event = build_event(
            room.version,
            room_id=room.room_id,
            type="m.room.message",
            sender=self.user,
            content={"msgtype": "m.text", "body": body},
            prev_events=[room.head],
            state=lambda t, k: room.state.get((t, k)),
            origin_server_ts=_now_ms(),
            server_name=self.server_name,
            signing_key=self.signing_key,
        )
        room.head = event
        self.events[event.event_id] = event
        return event


async def _all_visible(client: Client, token: str, heads: dict[str, str], deadline: float) -> None:
    """Poll the client API, one request at a time (so that the polling
    costs the server little), until the local user can read each room's
    last PDU."""
    headers = {"Authorization": f"Bearer {token}"}
    for room, event_id in heads.items():
        path = f"{V3}/rooms/{room}/event/{_quote(event_id)}"
        while True:
            async with client.http.get(client.base + path, headers=headers) as r:
                await r.read()
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                raise CheckFailed(f"federation phase: {event_id} not visible in {room} in time")
            await asyncio.sleep(0.05)


async def _check_history(
    client: Client, token: str, room: str, expected: set[str], name: str
) -> None:
    """Walk /messages back from the end until every expected PDU was seen."""
    missing = set(expected)
    start = ""
    while missing:
        page = await client.call("GET", f"{V3}/rooms/{room}/messages?dir=b&limit=100{start}", token)
        missing -= {e["event_id"] for e in page["chunk"]}
        if "end" not in page or not page["chunk"]:
            break
        start = f"&from={urllib.parse.quote(page['end'])}"
    if missing:
        raise CheckFailed(f"federation phase, {name}: {len(missing)} PDUs missing from {room}")


async def _intake(
    client: Client,
    target: Target,
    remote: Remote,
    rooms: int,
    pdus: int,
    budget: Budget,
    tag: str,
) -> dict[str, Any]:
    _, token = await register(client, f"fed_local_{tag}")
    made = await gather_limited(
        8,
        [
            client.call(
                "POST",
                f"{V3}/createRoom",
                token,
                {"preset": "public_chat", "creation_content": {"bench.nonce": f"{tag}{i}"}},
            )
            for i in range(rooms)
        ],
    )
    room_ids = [m["room_id"] for m in made]
    remote_rooms = await gather_limited(8, [remote.join(target, r) for r in room_ids])
    # Built before the clock starts: the remote's cost is not the server's.
    events = [remote.message(remote_rooms[i % rooms], f"{tag} pdu {i}") for i in range(pdus)]
    db0 = await database_bytes(target)
    pdu_json = [json.loads(json.dumps(e.pdu, default=dict)) for e in events]
    async with profiled(target, f"federation-{rooms}rooms"):
        meter = CpuMeter(target)
        await meter.start()
        t0 = time.perf_counter()
        sent = 0
        for first in range(0, pdus, TXN_PDUS):
            if budget.exhausted:
                break
            batch = events[first : first + TXN_PDUS]
            body = {
                "origin": remote.server_name,
                "origin_server_ts": _now_ms(),
                "pdus": pdu_json[first : first + TXN_PDUS],
                "edus": [],
            }
            answer = await remote.request(target, "PUT", f"{V1}/send/scale{next(_txn_ids)}", body)
            errors = {k: v for k, v in answer.get("pdus", {}).items() if v.get("error")}
            if errors:
                raise CheckFailed(f"federation phase, {target.name}: PDUs refused: {errors}")
            sent += len(batch)
        heads: dict[str, str] = {}
        for event in events[:sent]:
            heads[event.room_id] = event.event_id
        deadline = time.monotonic() + 300
        await _all_visible(client, token, heads, deadline)
        elapsed = time.perf_counter() - t0
        cpu = await meter.stop()
    grown = await database_bytes(target) - db0
    by_room: dict[str, set[str]] = {}
    for event in events[:sent]:
        by_room.setdefault(event.room_id, set()).add(event.event_id)
    await gather_limited(
        8,
        [_check_history(client, token, room, ids, target.name) for room, ids in by_room.items()],
    )
    return {
        "size": rooms,
        "pdus": sent,
        "pdus_per_s": round(sent / elapsed, 1),
        "cpu_ms_per_pdu": round(cpu / max(sent, 1) * 1000, 2),
        "db_bytes_per_event": round(grown / max(sent, 1)),
        "complete": sent == pdus,
    }


async def run(
    client: Client, target: Target, room_counts: list[int], pdus: int, budget: Budget
) -> PhaseResult:
    result = PhaseResult()
    with tempfile.TemporaryDirectory(prefix="bench-scale-remote-") as tmp:
        remote = Remote(Path(tmp))
        await remote.start()
        try:
            for n, rooms in enumerate(room_counts):
                # Each room count gets an equal share of what is left.
                left = budget.deadline - time.monotonic()
                if left <= 0:
                    result.stopped_by_budget = True
                    break
                share = Budget(left / (len(room_counts) - n))
                point = await _intake(client, target, remote, rooms, pdus, share, f"r{rooms}")
                result.points.append(point)
                if not point["complete"]:
                    result.stopped_by_budget = True
                print(
                    f"    {target.name}: {point['pdus']} PDUs into {rooms} room(s): "
                    f"{point['pdus_per_s']} PDUs/s, {point['cpu_ms_per_pdu']} ms CPU each, "
                    f"{point['db_bytes_per_event']} database bytes each",
                    flush=True,
                )
        finally:
            await remote.stop()
    return result
