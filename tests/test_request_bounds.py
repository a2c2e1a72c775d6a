"""Memory per request stays bounded under hostile-but-valid requests.

A server process (the real CLI, on the test's database) gets a batch of the
largest requests it accepts: bodies up to the size limit, createRooms with
as many remote invitees as allowed, key queries and claims and to-device
sends at their ceilings, and a few over them. Its resident memory before and
after is printed; it must stay within a generous bound, and an ordinary
request must still be answered. No assertion on speed: the machine is shared.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from homeserver.config import RequestLimits
from tests.test_process import free_port, wait_until_up

V3 = "/_matrix/client/v3"
MAX_BODY = 1024 * 1024
# How much the server's memory may grow over the whole batch.
GROWTH_BOUND_MB = 200
# Requests in flight at once (the machine's two cores are shared).
CONCURRENCY = 4
LIMITS = RequestLimits()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Client:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.token = ""
        # (status, path, errcode) of every answer.
        self.answers: list[tuple[int, str, str | None]] = []

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = None if body is None else json.dumps(body).encode()
        async with self.http.request(method, self.base + path, data=data, headers=headers) as resp:
            answer = await resp.json(content_type=None)
            errcode = answer.get("errcode") if isinstance(answer, dict) else None
            self.answers.append((resp.status, path.split("?")[0], errcode))
            return resp.status, answer


async def bounded(jobs: list[Awaitable[Any]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(job: Awaitable[Any]) -> None:
        async with gate:
            await job

    await asyncio.gather(*(one(j) for j in jobs))


def hostile_batch(c: Client, room_id: str, device_id: str) -> list[Awaitable[Any]]:
    jobs: list[Awaitable[Any]] = []
    # Bodies just under the size limit.
    filler = "x" * (MAX_BODY - 1024)
    for i in range(10):
        jobs.append(c.call("PUT", f"{V3}/user/@alice:localhost/account_data/big{i}", {"f": filler}))
    # Events just under the event size limit.
    for i in range(20):
        jobs.append(
            c.call(
                "PUT",
                f"{V3}/rooms/{room_id}/send/m.room.message/t{i}",
                {"msgtype": "m.text", "body": "y" * 60_000},
            )
        )
    # createRoom with as many remote invitees as allowed, and with one more.
    for r in range(5):
        invite = [f"@u{i}:dead{i % 10}.invalid" for i in range(LIMITS.max_invites_per_create_room)]
        jobs.append(c.call("POST", f"{V3}/createRoom", {"invite": invite, "name": f"r{r}"}))
    jobs.append(
        c.call(
            "POST",
            f"{V3}/createRoom",
            {"invite": [f"@u{i}:x.invalid" for i in range(LIMITS.max_invites_per_create_room + 1)]},
        )
    )
    # Key queries, claims and to-device at their ceilings, and one over each.
    users = [f"@u{i}:localhost" for i in range(LIMITS.max_users_per_key_query - 200)]
    users += [f"@u{i}:dead{i % 50}.invalid" for i in range(200)]
    for _ in range(3):
        jobs.append(c.call("POST", f"{V3}/keys/query", {"device_keys": {u: [] for u in users}}))
    jobs.append(
        c.call(
            "POST",
            f"{V3}/keys/query",
            {
                "device_keys": {
                    f"@v{i}:localhost": [] for i in range(LIMITS.max_users_per_key_query + 1)
                }
            },
        )
    )
    claim = {
        f"@u{i}:localhost": {f"D{j}": "signed_curve25519" for j in range(10)}
        for i in range(LIMITS.max_devices_per_key_claim // 10)
    }
    for _ in range(3):
        jobs.append(c.call("POST", f"{V3}/keys/claim", {"one_time_keys": claim}))
    messages = {
        f"@u{i}:localhost": {f"D{j}": {"n": j} for j in range(10)}
        for i in range(LIMITS.max_messages_per_to_device // 10 - 1)
    }
    messages["@alice:localhost"] = {device_id: {"hello": True}}
    for i in range(3):
        jobs.append(c.call("PUT", f"{V3}/sendToDevice/m.test/big{i}", {"messages": messages}))
    return jobs


async def test_memory_stays_bounded_under_the_largest_requests(database: str, tmp_path: Path):
    port = free_port()
    config = tmp_path / "homeserver.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server_name": "localhost",
                "data_dir": str(tmp_path),
                "client_listen": f"127.0.0.1:{port}",
                "federation_listen": f"127.0.0.1:{free_port()}",
                "database": {"dsn": database, "min_pool_size": 1, "max_pool_size": 10},
                "enable_registration": True,
                "registration_requires_token": False,
                "bcrypt_rounds": 4,
                "rate_limits": {"enabled": False},
                "max_request_body_bytes": MAX_BODY,
                "log_level": "WARNING",
            }
        )
    )
    log = (tmp_path / "server.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "homeserver", "run", "--config", str(config), stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(f"{base}/_matrix/client/versions", proc)
        async with aiohttp.ClientSession() as http:
            c = Client(http, base)
            status, body = await c.call(
                "POST",
                f"{V3}/register",
                {"username": "alice", "password": "secret", "auth": {"type": "m.login.dummy"}},
            )
            assert status == 200, body
            c.token, device_id = body["access_token"], body["device_id"]
            status, body = await c.call("POST", f"{V3}/createRoom", {"name": "warm-up"})
            assert status == 200, body
            room_id = body["room_id"]
            before = rss_mb(proc.pid)
            c.answers.clear()
            await bounded(hostile_batch(c, room_id, device_id))
            after = rss_mb(proc.pid)
            print(
                f"\nserver RSS before {before:.1f} MB, after {after:.1f} MB "
                f"(+{after - before:.1f} MB) over {len(c.answers)} hostile requests"
            )
            # Those over a ceiling were refused, the others done.
            refused = [a for a in c.answers if a[0] != 200]
            over = [(400, f"{V3}/{p}", "M_INVALID_PARAM") for p in ("createRoom", "keys/query")]
            assert sorted(refused) == sorted(over), refused
            assert after - before < GROWTH_BOUND_MB
            status, body = await c.call("GET", f"{V3}/sync?timeout=0")
            assert status == 200, body
            assert room_id in body["rooms"]["join"]
            assert body["to_device"]["events"][0]["content"] == {"hello": True}
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 60)
        log.close()
    assert "Traceback" not in (tmp_path / "server.log").read_text()
